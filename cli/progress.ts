/**
 * Progress of long work (a snapshot, a backfill) on a terminal: a bar per table redrawn in place
 * for `start` (elsewhere the service's own log lines say the same); `status` and `rebuild --wait`
 * print views/backfill.ts's lines.
 */
import type { SnapshotProgress } from '../ingest/index.ts';
import { describeProgress } from '../views/backfill.ts';

export { describeBackfill } from '../views/backfill.ts';

/** A snapshot progress handler drawing a bar per table on a terminal (redrawn at most 10 times a second). */
export function terminalProgress(out: NodeJS.WriteStream): (p: SnapshotProgress) => void {
  const started = new Map<string, number>();
  let drawn = 0;
  return (p) => {
    if (!started.has(p.table)) started.set(p.table, Date.now());
    if (!p.done && Date.now() - drawn < 100) return;
    drawn = Date.now();
    const width = 24;
    const share = p.done ? 1 : p.estimatedRows > 0 ? Math.min(0.99, p.rows / p.estimatedRows) : 0;
    const filled = Math.round(share * width);
    const bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
    out.write(`\r\x1b[2K${bar} ${describeProgress(p, (Date.now() - started.get(p.table)!) / 1000)}${p.done ? '\n' : ''}`);
  };
}
