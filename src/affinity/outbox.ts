/**
 * Buffered, back-pressured writes to one Bun socket.
 *
 * Bun sockets have no cork(), and `socket.write` returns how many bytes the kernel took — the
 * rest is dropped, not queued (HOP-NOTES.md). So frames are appended to a FrameWriter and
 * flushed once per tick (setImmediate): ~25 frames per write under load instead of one write
 * per frame. Whatever the kernel does not accept is kept and written on `drain`. The amount
 * kept is capped: past `maxBuffered` bytes the outbox refuses new frames and the caller fails
 * fast (503) instead of growing memory without bound.
 */
import { FrameWriter, type FrameTypeId } from "../core/frames.ts";

export interface WritableSocket {
  write(data: Uint8Array): number;
  end(): void;
}

/** Process-wide write counters of all outboxes (frames per write shows how well ticks batch). */
export const outboxTotals = { frames: 0, writes: 0, bytes: 0 };

export class Outbox {
  private writer = new FrameWriter();
  /** Bytes the kernel refused, waiting for `drain`. */
  private backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly socket: WritableSocket,
    private readonly maxBuffered = 64 * 1024 * 1024,
  ) {}

  /** Bytes waiting to be written. */
  get buffered(): number {
    return this.backlogBytes + this.writer.size;
  }

  /** Queues a frame; false if the buffer is full or the socket closed (the frame is not sent). */
  send(type: FrameTypeId, id: number, text: string, tail?: Uint8Array): boolean {
    if (this.closed || this.buffered > this.maxBuffered) return false;
    this.writer.push(type, id, text, tail);
    outboxTotals.frames++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  /**
   * Writes what is queued now instead of at the end of the tick. The owner calls it after it
   * has answered every frame of one read: those replies are all there is to batch, and waiting
   * for the tick's other callbacks (the worker's own HTTP traffic) only adds latency.
   */
  flushNow(): void {
    if (this.writer.size > 0) this.flush();
  }

  private flush = (): void => {
    this.scheduled = false;
    if (this.closed || this.writer.size === 0) return;
    const bytes = this.writer.bytes();
    if (this.backlog.length > 0) {
      this.keep(bytes);
    } else {
      outboxTotals.writes++;
      outboxTotals.bytes += bytes.length;
      const n = this.socket.write(bytes);
      if (n < bytes.length) this.keep(bytes.subarray(Math.max(0, n)));
    }
    // The writer's buffer is reused: whatever the kernel did not take was copied by keep().
    this.writer.reset();
  };

  private keep(bytes: Uint8Array): void {
    this.backlog.push(bytes.slice());
    this.backlogBytes += bytes.length;
  }

  /** Call from the socket's `drain` handler: writes what the kernel refused before. */
  onDrain(): void {
    while (this.backlog.length > 0 && !this.closed) {
      const head = this.backlog[0]!;
      const n = this.socket.write(head);
      if (n >= head.length) {
        this.backlog.shift();
        this.backlogBytes -= head.length;
        continue;
      }
      // Partial: keep the unwritten tail at the head and wait for the next drain.
      this.backlog[0] = head.subarray(Math.max(0, n));
      this.backlogBytes -= Math.max(0, n);
      return;
    }
    if (!this.closed && this.writer.size > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  close(): void {
    this.closed = true;
    this.backlog = [];
    this.backlogBytes = 0;
  }
}
