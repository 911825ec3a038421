// The TLS certificate: the operator's (data/cert.pem + data/key.pem, as in
// Galène, or --cert/--key), else a self-signed one generated once and kept
// in the data directory so browsers see the same certificate after a restart.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import type { Logger } from '../log.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

export async function loadOrCreateCertificate(dataDir: string, given: Partial<TlsFiles>, log: Logger): Promise<{ cert: Buffer; key: Buffer }> {
  const certFile = given.cert ?? join(dataDir, 'cert.pem');
  const keyFile = given.key ?? join(dataDir, 'key.pem');
  try {
    return { cert: await readFile(certFile), key: await readFile(keyFile) };
  } catch (e) {
    if (given.cert || given.key) {
      throw new Error(`cannot read the TLS certificate (${certFile}) or key (${keyFile}): ${(e as Error).message}`);
    }
  }
  log.warn({ certFile }, 'no TLS certificate found; generating a self-signed one (browsers will warn until you install a real one)');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  } as Parameters<typeof generate>[1]);
  await mkdir(dataDir, { recursive: true });
  await writeFile(certFile, pems.cert, { mode: 0o644 });
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private) };
}
