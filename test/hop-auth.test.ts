/**
 * The hop handshake over real Unix sockets: both sides prove the cluster secret, so a listener
 * that sits on a worker's socket path without the secret never receives a call (the dialer
 * closes it and the call ends in 503 OWNER_UNAVAILABLE after the owner wait), and a peer that
 * has not authenticated cannot make anyone buffer more than a few KiB.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { HopClient } from "../src/affinity/hop-client.ts";
import { startHopServer, type HopServer } from "../src/affinity/hop-server.ts";
import { prove, type HopTranscript } from "../src/affinity/peer-auth.ts";
import { QdpError } from "../src/core/errors.ts";
import { decodeText, encodeCallHead, FrameReader, FrameType, FrameWriter } from "../src/core/frames.ts";
import type { Logger } from "../src/services/types.ts";

const SECRET = "the-cluster-secret";
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "qdp-hop-auth-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function client(opts: { secret?: string; ownerWaitMs?: number } = {}): HopClient {
  const hop = new HopClient({
    self: 0,
    selfGen: 1,
    workers: 2,
    secret: opts.secret ?? SECRET,
    ownerWaitMs: opts.ownerWaitMs ?? 300,
    maxPending: 100,
    log: quiet,
  });
  cleanups.push(() => hop.stop());
  return hop;
}

/** A call for worker 1; resolves with its answer or the QdpError it failed with. */
async function callWorker1(hop: HopClient): Promise<{ type: number; text: string } | QdpError> {
  const head = encodeCallHead({ f: 1001, u: "victim", r: "req-1", t: 1000 });
  try {
    const r = await hop.request(1, FrameType.CALL, head, new TextEncoder().encode("{}"), Date.now() + 1000);
    return { type: r.type, text: decodeText(r.payload) };
  } catch (err) {
    if (err instanceof QdpError) return err;
    throw err;
  }
}

type Answer = "ok without proof" | "wrong proof" | "the dialer's own proof reflected" | "ok before any challenge" | "a huge frame";

/**
 * A listener on a worker's path that does not know the secret: it plays the handshake as far as
 * it can and records every frame type it receives.
 */
function fakeListener(path: string, answer: Answer) {
  const seen: number[] = [];
  let connections = 0;
  let closes = 0;
  const send = (s: Socket<undefined>, type: 1 | 2 | 3, payload: string) => {
    const w = new FrameWriter();
    w.push(type, 0, payload);
    s.write(w.bytes());
  };
  const listener = Bun.listen({
    unix: path,
    socket: {
      open(s) {
        connections++;
        if (answer === "ok before any challenge") send(s, FrameType.HELLO, JSON.stringify({ ok: true }));
        else if (answer === "a huge frame") {
          const b = new Uint8Array(64 * 1024);
          new DataView(b.buffer).setUint32(0, 50 * 1024 * 1024);
          s.write(b);
        } else send(s, FrameType.HELLO, JSON.stringify({ challenge: "A".repeat(24) }));
      },
      data(s, chunk) {
        const reader = new FrameReader((type, _id, payload) => {
          seen.push(type);
          if (type !== FrameType.HELLO) return;
          const hello = JSON.parse(decodeText(payload)) as { mac?: string };
          if (answer === "ok without proof") send(s, FrameType.HELLO, JSON.stringify({ ok: true }));
          if (answer === "wrong proof") send(s, FrameType.HELLO, JSON.stringify({ ok: true, mac: "0".repeat(64) }));
          if (answer === "the dialer's own proof reflected") send(s, FrameType.HELLO, JSON.stringify({ ok: true, mac: hello.mac }));
        });
        try {
          reader.feed(chunk);
        } catch {}
      },
      close() {
        closes++;
      },
    },
  });
  cleanups.push(() => listener.stop(true));
  return { seen, connections: () => connections, closes: () => closes };
}

describe("a listener that cannot prove the cluster secret gets no call", () => {
  const answers: Answer[] = ["ok without proof", "wrong proof", "the dialer's own proof reflected", "ok before any challenge", "a huge frame"];
  for (const answer of answers) {
    test(answer, async () => {
      const path = join(tempDir(), "w1-g2.sock");
      const fake = fakeListener(path, answer);
      const hop = client({ ownerWaitMs: 300 });
      hop.setPeers([{ index: 1, gen: 2, path }]);
      const t0 = Date.now();
      const r = await callWorker1(hop);
      expect(r).toBeInstanceOf(QdpError);
      expect((r as QdpError).code).toBe("OWNER_UNAVAILABLE");
      expect(Date.now() - t0).toBeLessThan(900);
      // The dialer did dial, and closed: nothing but its HELLO ever reached the fake.
      expect(fake.connections()).toBeGreaterThan(0);
      expect(fake.seen.filter((t) => t !== FrameType.HELLO)).toEqual([]);
      expect(fake.closes()).toBeGreaterThan(0);
      expect(hop.isUp(1)).toBe(false);
    });
  }
});

describe("two real peers", () => {
  function listener(path: string, secret: string, onCall: () => void): HopServer {
    const s = startHopServer({
      path,
      secret,
      index: 1,
      gen: 2,
      log: quiet,
      handle(type) {
        onCall();
        return { type: FrameType.RESULT, text: JSON.stringify({ type }) };
      },
    });
    cleanups.push(() => s.stop());
    return s;
  }

  test("with the same secret the call goes through", async () => {
    const path = join(tempDir(), "w1-g2.sock");
    let calls = 0;
    listener(path, SECRET, () => calls++);
    const hop = client();
    hop.setPeers([{ index: 1, gen: 2, path }]);
    expect(await callWorker1(hop)).toEqual({ type: FrameType.RESULT, text: JSON.stringify({ type: FrameType.CALL }) });
    expect(calls).toBe(1);
    expect(hop.isUp(1)).toBe(true);
  });

  test("a listener of another generation than the supervisor named is refused", async () => {
    const path = join(tempDir(), "w1-g2.sock");
    let calls = 0;
    listener(path, SECRET, () => calls++);
    const hop = client();
    // The supervisor says index 1 generation 3 listens there: the proof (for gen 2) does not fit.
    hop.setPeers([{ index: 1, gen: 3, path }]);
    expect(((await callWorker1(hop)) as QdpError).code).toBe("OWNER_UNAVAILABLE");
    expect(calls).toBe(0);
  });

  test("with different secrets neither side accepts the other", async () => {
    const path = join(tempDir(), "w1-g2.sock");
    let calls = 0;
    listener(path, "another-secret", () => calls++);
    const hop = client();
    hop.setPeers([{ index: 1, gen: 2, path }]);
    expect(((await callWorker1(hop)) as QdpError).code).toBe("OWNER_UNAVAILABLE");
    expect(calls).toBe(0);
  });

  test("the dialer's and the listener's proofs differ for the same handshake", () => {
    const t: HopTranscript = {
      listenerChallenge: "L".repeat(24),
      dialerChallenge: "D".repeat(24),
      dialer: { index: 0, gen: 1 },
      listener: { index: 1, gen: 2 },
    };
    expect(prove(SECRET, "dialer", t)).not.toBe(prove(SECRET, "listener", t));
  });

  test("a frame over 4 KiB before authentication closes the connection before it is read", async () => {
    const path = join(tempDir(), "w1-g2.sock");
    let calls = 0;
    listener(path, SECRET, () => calls++);
    let closed = false;
    const s = await Bun.connect({
      unix: path,
      socket: {
        data() {},
        close() {
          closed = true;
        },
      },
    });
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, 4097);
    s.write(b);
    for (let i = 0; i < 40 && !closed; i++) await Bun.sleep(10);
    expect(closed).toBe(true);
    expect(calls).toBe(0);
  });
});
