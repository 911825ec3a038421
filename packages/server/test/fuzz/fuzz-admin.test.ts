// Short fuzz pass over the admin API, the group-file parser and the JWT verifier (see support/short-pass.ts).
import { shortPass } from './support/short-pass.ts';

shortPass(['admin', 'group-file', 'jwt']);
