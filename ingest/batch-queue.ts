/**
 * A bounded queue between a source's producer (a replication socket, a Kafka fetch loop) and the
 * engine's pull. Past `high` waiting batches, or `highChanges` waiting changes, the producer is
 * paused (`pause`, or `waitForSpace`), so a slow Redis slows reading instead of filling memory;
 * the source keeps the rest for us.
 */
import type { ChangeBatch } from './change.ts';

export class BatchQueue {
  private readonly items: (ChangeBatch | null)[] = [];
  private waiter: ((value: ChangeBatch | null) => void) | null = null;
  private rejecter: ((error: unknown) => void) | null = null;
  private error: unknown = null;
  private paused = false;
  private readonly pause: () => void;
  private readonly resume: () => void;
  private readonly high: number;
  private readonly highChanges: number;
  private changes = 0;
  private spaceWaiters: (() => void)[] = [];

  constructor(pause: () => void = () => undefined, resume: () => void = () => undefined, high = 256, highChanges = 50_000) {
    this.pause = pause;
    this.resume = resume;
    this.high = high;
    this.highChanges = highChanges;
  }

  private full(): boolean {
    return this.items.length >= this.high || this.changes >= this.highChanges;
  }

  /** Resolves when the queue is below its high-water mark (for pull-based producers like Kafka). */
  waitForSpace(): Promise<void> {
    if (!this.full() || this.error) return Promise.resolve();
    return new Promise((r) => this.spaceWaiters.push(r));
  }

  isEmpty(): boolean {
    return this.items.length === 0;
  }

  push(batch: ChangeBatch | null): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = this.rejecter = null;
      w(batch);
      return;
    }
    this.items.push(batch);
    this.changes += batch?.changes.length ?? 0;
    if (!this.paused && this.full()) {
      this.paused = true;
      this.pause();
    }
  }

  /** End the stream: the consumer's next() returns null once the queue is drained. */
  close(): void {
    this.push(null);
  }

  fail(error: unknown): void {
    if (this.error) return;
    this.error = error;
    for (const w of this.spaceWaiters.splice(0)) w();
    if (this.rejecter) {
      const r = this.rejecter;
      this.waiter = this.rejecter = null;
      r(error);
    }
  }

  /** The batches as they come, until the queue is closed or `stopped()` says so. */
  async *batches(stopped: () => boolean): AsyncGenerator<ChangeBatch> {
    for (;;) {
      const batch = await this.next();
      if (batch === null || stopped()) return;
      yield batch;
    }
  }

  next(): Promise<ChangeBatch | null> {
    if (this.items.length > 0) {
      const item = this.items.shift()!;
      this.changes -= item?.changes.length ?? 0;
      if (this.paused && this.items.length < this.high / 2 && this.changes < this.highChanges / 2) {
        this.paused = false;
        this.resume();
      }
      if (!this.full()) for (const w of this.spaceWaiters.splice(0)) w();
      return Promise.resolve(item);
    }
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.rejecter = reject;
    });
  }
}
