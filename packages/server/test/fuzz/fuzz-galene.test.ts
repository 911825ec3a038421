// Short fuzz pass over the Galène protocol and Camus rooms (see support/short-pass.ts).
import { shortPass } from './support/short-pass.ts';

shortPass(['galene', 'camus']);
