// Heap snapshots of the server under soak, summed by what holds the memory:
// each node's self size by its type and constructor (or "(string)",
// "(closure) name" …). Taking a snapshot collects garbage first, so its total
// is the live heap, unlike the heap gauge in /metrics; two summaries side by
// side show what grew. Used by run.ts (--heap-snapshots DIR); on its own:
//   node --import tsx bench/soak/heap.ts FIRST.heapsnapshot LAST.heapsnapshot
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface HeapSummary {
  /** Bytes of every node (the live heap after the collection the snapshot made). */
  total: number;
  nodes: number;
  /** Bytes and count by "type name". */
  by: Map<string, { bytes: number; count: number }>;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export async function summarize(file: string): Promise<HeapSummary> {
  const s = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = s.snapshot.meta.node_types[0];
  const by = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]!] ?? '?';
    const size = s.nodes[i + sizeAt]!;
    total += size;
    // Strings and numbers by type only: their "names" are their values.
    const name = type === 'object' || type === 'closure' || type === 'native' ? (s.strings[s.nodes[i + nameAt]!] ?? '?').slice(0, 60) : '';
    const key = name ? `${type} ${name}` : `(${type})`;
    const e = by.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    by.set(key, e);
  }
  return { total, nodes: s.nodes.length / width, by };
}

/** The `top` kinds that grew most in bytes from `a` to `b`, as table rows. */
export function growth(a: HeapSummary, b: HeapSummary, top = 12): string[] {
  const rows = [...b.by].map(([k, v]) => {
    const was = a.by.get(k) ?? { bytes: 0, count: 0 };
    return { k, bytes: v.bytes - was.bytes, count: v.count - was.count, now: v };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  return rows.slice(0, top).map((r) => `| ${r.k.replace(/\|/g, '\\|')} | ${(r.bytes / 1024).toFixed(1)} | ${r.count} | ${(r.now.bytes / 1024).toFixed(1)} | ${r.now.count} |`);
}

export const GROWTH_HEADER = ['| kind | KB grown | count grown | KB now | count now |', '| --- | ---: | ---: | ---: | ---: |'];

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (files.length < 2) {
    console.error('Usage: node --import tsx bench/soak/heap.ts FIRST.heapsnapshot LAST.heapsnapshot');
    process.exit(2);
  }
  const [a, b] = [await summarize(files[0]!), await summarize(files.at(-1)!)];
  console.log(`live heap: ${(a.total / 2 ** 20).toFixed(2)} MB (${a.nodes} nodes) → ${(b.total / 2 ** 20).toFixed(2)} MB (${b.nodes} nodes)`);
  for (const line of [...GROWTH_HEADER, ...growth(a, b)]) console.log(line);
}
