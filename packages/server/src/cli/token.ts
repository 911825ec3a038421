// `atrium token`: create an invite link (a stateful token) for a group,
// written to the data directory where a running server picks it up.
import { join, resolve } from 'node:path';
import { TokenStore } from '../auth/tokens.ts';
import { PERMISSIONS, isPermission } from '../core/vocabulary.ts';
import { groupPath } from '../http/place.ts';
import { silentLogger } from '../log.ts';
import { parse } from './args.ts';

const HELP = `Usage: atrium token --group NAME [options]

Creates an invite link for a group and prints it.

  --group NAME          the group (required)
  --user NAME           the username the link logs in as (default: the
                        user picks one)
  --permissions LIST    comma-separated: op,present,message,caption,token,record
                        (default present,message)
  --expires DURATION    how long the link works: 30m, 12h, 7d (default 24h)
  --data DIR            the server's data directory (default ./data)
  --url BASE            the server's public URL (default https://localhost:8443)
`;

export async function runToken(argv: string[]): Promise<number> {
  const { values } = parse('token', argv, {
    group: { type: 'string' },
    user: { type: 'string' },
    permissions: { type: 'string', default: 'present,message' },
    expires: { type: 'string', default: '24h' },
    data: { type: 'string', default: './data' },
    url: { type: 'string', default: 'https://localhost:8443' },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const group = values.group as string | undefined;
  if (!group) throw new Error('token: --group is required');
  const perms = (values.permissions as string)
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of perms) {
    if (!isPermission(p)) throw new Error(`token: unknown permission "${p}" (known: ${PERMISSIONS.join(', ')})`);
  }
  const ms = parseDuration(values.expires as string);
  const store = new TokenStore({ file: join(resolve(values.data as string), 'var', 'tokens.jsonl'), log: silentLogger() });
  await store.load();
  const token = await store.create({
    group,
    ...(values.user ? { username: values.user as string } : {}),
    permissions: perms,
    expires: new Date(Date.now() + ms),
    issuedBy: 'atrium token',
  });
  const base = (values.url as string).replace(/\/+$/, '');
  process.stdout.write(`${base}${groupPath(group)}?token=${encodeURIComponent(token.token)}\n`);
  process.stderr.write(`valid until ${token.expires}\n`);
  return 0;
}

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration: use a number and s, m, h or d (e.g. 12h)`);
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
