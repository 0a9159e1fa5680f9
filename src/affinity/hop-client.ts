/**
 * The dialling side of the hop: one persistent, multiplexed connection per peer index.
 *
 * A call for an index whose connection is not up — owner crashed, restarting, or answering
 * MOVED because it is handing its users to a replacement — waits in that index's queue
 * (buffered, no polling) until a connection to the index's current worker is authenticated,
 * or until QDP_OWNER_WAIT_MS (bounded by the call's deadline) passes: then 503
 * OWNER_UNAVAILABLE with Retry-After. It is never run anywhere else.
 *
 * "Authenticated" means both ways (peer-auth.ts): the listener must prove the cluster secret
 * for the index and generation the supervisor gave for its path before a call is sent there.
 * A listener without that proof (whoever else holds the path) is closed and never sees a call.
 *
 * This file keeps the calls — who waits for which index, what is in flight on which connection,
 * their deadlines and answers; peer-connection.ts keeps a connection (socket, frames, handshake).
 */
import { DeadlineQueue, hostTimer, type Deadline } from "../core/deadlines.ts";
import { QdpError } from "../core/errors.ts";
import { FrameType, type FrameTypeId } from "../core/frames.ts";
import { Histogram } from "../telemetry/histogram.ts";
import type { Logger } from "../services/types.ts";
import { PeerConnection, type PeerAddress } from "./peer-connection.ts";

export type { PeerAddress };

export interface HopResponse {
  type: number;
  payload: Uint8Array;
}

/** One request: the same object waits for its owner, sits in `pending`, and is re-queued after MOVED. */
interface Job {
  type: FrameTypeId;
  text: string;
  tail: Uint8Array | undefined;
  callDeadline: number;
  resolve: (r: HopResponse) => void;
  reject: (e: QdpError) => void;
  wait: Deadline | null;
  /** performance.now() when sent, for the hop latency histogram. */
  sentAt: number;
}

/** A connection to a peer and the table of calls in flight on it. */
interface Conn {
  peer: PeerConnection;
  nextId: number;
  /** Sent, unanswered calls by id; insertion order is send order, so the oldest come first. */
  pending: Map<number, Job>;
}

interface Slot {
  addr: PeerAddress | null;
  conn: Conn | null;
  waiting: Job[];
  retryDelay: number;
  retryTimer: ReturnType<typeof setTimeout> | null;
}

export interface HopClientOptions {
  self: number;
  selfGen: number;
  workers: number;
  secret: string;
  ownerWaitMs: number;
  maxPending: number;
  log: Logger;
}

export class HopClient {
  private slots: Slot[];
  /** Calls waiting for their owner: one unref'd timer at the earliest wait's end. */
  private waits = new DeadlineQueue(hostTimer(globalThis));
  /** Round-trip time of hopped calls, seconds. */
  readonly latency = new Histogram();
  private sweeper: ReturnType<typeof setInterval>;
  hopsOut = 0;
  ownerWaits = 0;
  ownerUnavailable = 0;
  private stopped = false;

  constructor(private readonly o: HopClientOptions) {
    this.slots = Array.from({ length: o.workers }, () => ({ addr: null, conn: null, waiting: [], retryDelay: 25, retryTimer: null }));
    // The stuck-owner guard has 500 ms of slack, so a quarter second is fine enough; walking
    // a busy pending map every 20 ms (past its deleted entries) cost ~5% of a worker's CPU.
    this.sweeper = setInterval(() => this.expireStuck(Date.now()), 250);
  }

  /** Whether index `i` currently has an authenticated connection. */
  isUp(i: number): boolean {
    const c = this.slots[i]?.conn;
    return !!c && c.peer.ready && !c.peer.retired;
  }

  /** Where each index's worker listens (from the supervisor). A newer generation replaces the connection. */
  setPeers(peers: PeerAddress[]): void {
    for (const p of peers) {
      const slot = this.slots[p.index];
      if (!slot) continue;
      // The own index matters only when a newer worker replaces this one (hand-off).
      if (p.index === this.o.self && p.gen === this.o.selfGen) continue;
      if (slot.addr && slot.addr.gen >= p.gen && slot.addr.path === p.path) continue;
      slot.addr = p;
      const old = slot.conn;
      slot.conn = null;
      // Let the old connection finish what it has in flight, then close it.
      if (old) retire(old);
      this.connect(p.index);
    }
  }

  /**
   * Sends a frame to index `i` and resolves with its answer. Waits for the index to be up
   * (see the file comment); rejects OWNER_UNAVAILABLE, OVERLOADED or TIMEOUT.
   */
  request(i: number, type: FrameTypeId, text: string, tail: Uint8Array | undefined, callDeadline: number): Promise<HopResponse> {
    return new Promise<HopResponse>((resolve, reject) => {
      const job: Job = { type, text, tail, callDeadline, resolve, reject, wait: null, sentAt: 0 };
      this.dispatch(i, job);
    });
  }

  private dispatch(i: number, job: Job): void {
    const slot = this.slots[i]!;
    const c = slot.conn;
    if (c && c.peer.ready && !c.peer.retired) {
      this.sendOn(i, c, job);
      return;
    }
    if (this.stopped) {
      job.reject(unavailable(i, "this worker is stopping"));
      return;
    }
    // Owner not reachable now: wait for it, bounded by QDP_OWNER_WAIT_MS and the deadline.
    this.ownerWaits++;
    // The clock is read only here: a call sent at once (nearly all) costs no read.
    const until = Math.min(Date.now() + this.o.ownerWaitMs, job.callDeadline);
    job.wait = this.waits.add(until, () => {
      const idx = slot.waiting.indexOf(job);
      if (idx >= 0) slot.waiting.splice(idx, 1);
      this.ownerUnavailable++;
      job.reject(unavailable(i, `worker ${i} is not available`));
    });
    slot.waiting.push(job);
    if (!slot.conn && !slot.retryTimer && slot.addr) this.connect(i);
  }

  private sendOn(i: number, c: Conn, job: Job): void {
    if (c.pending.size >= this.o.maxPending) {
      job.reject(new QdpError("OVERLOADED", `too many calls in flight to worker ${i}`));
      return;
    }
    const id = (c.nextId = (c.nextId + 1) >>> 0 || 1);
    if (!c.peer.send(job.type, id, job.text, job.tail)) {
      job.reject(new QdpError("OVERLOADED", `hop buffer to worker ${i} is full`));
      return;
    }
    this.hopsOut++;
    job.sentAt = performance.now();
    c.pending.set(id, job);
  }

  /**
   * Edge-side guard for an owner that never answers (its loop stuck): calls past their deadline
   * (plus slack for the owner's own TIMEOUT answer) are answered TIMEOUT here. Deadlines grow
   * with send order, so each scan stops at the first call still in time.
   */
  private expireStuck(now: number): void {
    for (const [i, slot] of this.slots.entries()) {
      const c = slot.conn;
      if (!c) continue;
      for (const [id, job] of c.pending) {
        if (job.callDeadline + 500 > now) break;
        c.pending.delete(id);
        job.reject(new QdpError("TIMEOUT", `worker ${i} did not answer before the deadline`));
      }
    }
  }

  private flushWaiting(i: number): void {
    const slot = this.slots[i]!;
    const jobs = slot.waiting;
    slot.waiting = [];
    for (const job of jobs) {
      if (job.wait) {
        if (job.wait.done) continue;
        job.wait.done = true;
        job.wait = null;
      }
      this.dispatch(i, job);
    }
  }

  private connect(i: number): void {
    const slot = this.slots[i]!;
    const addr = slot.addr;
    if (!addr || this.stopped || slot.conn) return;
    const conn: Conn = { peer: null as unknown as PeerConnection, nextId: 0, pending: new Map() };
    slot.conn = conn;
    conn.peer = new PeerConnection(addr, { index: this.o.self, gen: this.o.selfGen, secret: this.o.secret }, this.o.log, {
      ready: () => {
        slot.retryDelay = 25;
        if (slot.conn === conn) this.flushWaiting(i);
      },
      frame: (type, id, payload) => this.onAnswer(i, conn, type, id, payload),
      closed: () => this.onClose(i, conn),
    });
  }

  private onAnswer(i: number, conn: Conn, type: number, id: number, payload: Uint8Array): void {
    const job = conn.pending.get(id);
    if (!job) return;
    conn.pending.delete(id);
    if (type === FrameType.MOVED) {
      // The call did not run: that worker has handed this index to a newer one. Stop using
      // the connection and let the call wait for the new owner like any call for a down owner.
      conn.peer.retired = true;
      this.hopsOut--;
      this.dispatch(i, job);
      maybeClose(conn);
      return;
    }
    this.latency.observe((performance.now() - job.sentAt) / 1000);
    job.resolve({ type, payload });
    if (conn.peer.retired) maybeClose(conn);
  }

  /** The connection is gone (PeerConnection says so once). */
  private onClose(i: number, conn: Conn): void {
    // Calls already sent may or may not have run: never re-run them elsewhere or twice.
    for (const job of conn.pending.values()) job.reject(unavailable(i, `worker ${i} went away during the call`));
    conn.pending.clear();
    const slot = this.slots[i]!;
    if (slot.conn !== conn) return;
    slot.conn = null;
    if (this.stopped || !slot.addr) return;
    // Redial with back-off; a newer address from the supervisor (setPeers) dials at once.
    const delay = slot.retryDelay;
    slot.retryDelay = Math.min(slot.retryDelay * 2, 500);
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = null;
      this.connect(i);
    }, delay);
  }

  /** Calls waiting for an owner, per index. */
  waitingCounts(): number[] {
    return this.slots.map((s) => s.waiting.length);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    this.waits.stop();
    for (const [i, slot] of this.slots.entries()) {
      if (slot.retryTimer) clearTimeout(slot.retryTimer);
      for (const job of slot.waiting) {
        if (job.wait && !job.wait.done) {
          job.wait.done = true;
          job.reject(unavailable(i, "this worker is stopping"));
        }
      }
      slot.waiting = [];
      if (slot.conn) retire(slot.conn);
    }
  }
}

function unavailable(i: number, why: string): QdpError {
  return new QdpError("OWNER_UNAVAILABLE", `owner of this user (worker ${i}) is unavailable: ${why}`, { retryAfter: 1 });
}

function retire(c: Conn): void {
  c.peer.retired = true;
  maybeClose(c);
}

function maybeClose(c: Conn): void {
  // A connection still dialling closes itself once it opens and sees it is retired.
  if (c.pending.size === 0) c.peer.end();
}
