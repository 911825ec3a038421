#!/usr/bin/env node
// The `atrium` command. The server is TypeScript run through tsx, so there
// is no build step between a checkout and a running server.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
