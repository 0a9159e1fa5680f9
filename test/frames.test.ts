/**
 * The hop's wire format and its back-pressured writer. A stream socket delivers bytes in chunks
 * of any size and Bun sockets drop what the kernel does not take, so frames must survive any
 * chunking and the outbox must never lose or reorder a byte.
 */
import { describe, expect, test } from "bun:test";
import {
  FrameReader,
  FrameType,
  FrameWriter,
  HEADER_BYTES,
  MAX_FRAME_BYTES,
  PREAUTH_MAX_FRAME_BYTES,
  decodeText,
  encodeCallHead,
  splitCall,
  type CallHead,
  type FrameTypeId,
} from "../src/core/frames.ts";
import { Outbox, type WritableSocket } from "../src/affinity/outbox.ts";
import { rng } from "./support/rng.ts";

const enc = new TextEncoder();

interface Frame {
  type: number;
  id: number;
  /** Payload bytes as hex, so frames compare by value. */
  payload: string;
}

interface Sent {
  type: FrameTypeId;
  id: number;
  text: string;
  tail?: Uint8Array;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const TYPES = Object.values(FrameType) as FrameTypeId[];
const TEXTS = ["", "{}", '{"ok":true}', "用户 🙂 ünïcödé", "x".repeat(1000), '{"symbol":"ÄÖÜ","n":1}\n'];

function randomFrames(count: number, rand: () => number): Sent[] {
  const out: Sent[] = [];
  for (let i = 0; i < count; i++) {
    const s: Sent = {
      type: TYPES[Math.floor(rand() * TYPES.length)]!,
      id: i % 7 === 0 ? 0xffffffff : Math.floor(rand() * 0xffffffff),
      text: TEXTS[Math.floor(rand() * TEXTS.length)]!,
    };
    if (rand() < 0.4) {
      const tail = new Uint8Array(Math.floor(rand() * 50));
      for (let j = 0; j < tail.length; j++) tail[j] = Math.floor(rand() * 256);
      s.tail = tail;
    }
    out.push(s);
  }
  return out;
}

function expected(frames: Sent[]): Frame[] {
  return frames.map((f) => {
    const text = enc.encode(f.text);
    const payload = new Uint8Array(text.length + (f.tail?.length ?? 0));
    payload.set(text);
    if (f.tail) payload.set(f.tail, text.length);
    return { type: f.type, id: f.id, payload: hex(payload) };
  });
}

function encode(frames: Sent[]): Uint8Array {
  const w = new FrameWriter();
  for (const f of frames) w.push(f.type, f.id, f.text, f.tail);
  return w.bytes().slice();
}

/** A reader that records frames, copying payloads (they are views into the reader's buffer). */
function recorder(maxFrame?: number): { reader: FrameReader; frames: Frame[] } {
  const frames: Frame[] = [];
  const reader = new FrameReader((type, id, payload) => frames.push({ type, id, payload: hex(payload) }), maxFrame);
  return { reader, frames };
}

describe("frame round trip", () => {
  const rand = rng(1);
  const sent = randomFrames(300, rand);
  const bytes = encode(sent);
  const want = expected(sent);

  test("all at once", () => {
    const { reader, frames } = recorder();
    reader.feed(bytes);
    expect(frames).toEqual(want);
  });

  test("byte by byte", () => {
    const { reader, frames } = recorder();
    for (let i = 0; i < bytes.length; i++) reader.feed(bytes.subarray(i, i + 1));
    expect(frames).toEqual(want);
  });

  test("in random chunk sizes", () => {
    for (let round = 0; round < 20; round++) {
      const { reader, frames } = recorder();
      let pos = 0;
      while (pos < bytes.length) {
        const n = 1 + Math.floor(rand() * (round % 2 === 0 ? 16 : 4000));
        reader.feed(bytes.subarray(pos, pos + n));
        pos += n;
      }
      expect(frames).toEqual(want);
    }
  });

  test("a chunk's memory reused after feed does not corrupt a frame split across chunks", () => {
    // Bun may reuse a data callback's buffer; the reader must have copied the partial frame.
    const one = encode([{ type: FrameType.RESULT, id: 9, text: '{"a":"用户"}' }]);
    const { reader, frames } = recorder();
    const chunk = one.slice(0, 7);
    reader.feed(chunk);
    chunk.fill(0xee);
    reader.feed(one.slice(7));
    expect(frames).toEqual(expected([{ type: FrameType.RESULT, id: 9, text: '{"a":"用户"}' }]));
  });

  test("unicode text is sent as UTF-8", () => {
    const text = "用户 🙂 ünïcödé 𝄞";
    const { reader, frames } = recorder();
    reader.feed(encode([{ type: FrameType.CALL, id: 1, text }]));
    expect(frames.length).toBe(1);
    expect(decodeText(Buffer.from(frames[0]!.payload, "hex"))).toBe(text);
  });

  test("tail bytes follow the text unchanged", () => {
    const tail = new Uint8Array([0, 1, 2, 0xff, 10, 13, 0x80]);
    const { reader, frames } = recorder();
    reader.feed(encode([{ type: FrameType.CALL, id: 3, text: "head\n", tail }]));
    expect(frames).toEqual([{ type: FrameType.CALL, id: 3, payload: hex(enc.encode("head\n")) + hex(tail) }]);
  });

  test("the header is a big-endian length of the rest, the type and the call id", () => {
    const bytes = encode([{ type: FrameType.ERROR, id: 0x01020304, text: "ab" }]);
    expect(hex(bytes)).toBe("00000007" + "04" + "01020304" + hex(enc.encode("ab")));
    expect(bytes.length).toBe(HEADER_BYTES + 2);
  });

  test("a frame larger than the writer's initial buffer", () => {
    const big = "用".repeat(100_000) + "end";
    const tail = new Uint8Array(70_000).fill(7);
    const sent: Sent[] = [
      { type: FrameType.RESULT, id: 1, text: "small" },
      { type: FrameType.RESULT, id: 2, text: big, tail },
      { type: FrameType.RESULT, id: 3, text: "after" },
    ];
    const { reader, frames } = recorder();
    reader.feed(encode(sent));
    expect(frames).toEqual(expected(sent));
  });

  test("a writer reset starts over and stays usable", () => {
    const w = new FrameWriter();
    w.push(FrameType.RESULT, 1, "first");
    expect(w.size).toBeGreaterThan(0);
    w.reset();
    expect(w.size).toBe(0);
    expect(w.bytes().length).toBe(0);
    w.push(FrameType.RESULT, 2, "second");
    const { reader, frames } = recorder();
    reader.feed(w.bytes());
    expect(frames).toEqual(expected([{ type: FrameType.RESULT, id: 2, text: "second" }]));
  });
});

describe("malformed streams", () => {
  test("a length shorter than the header throws", () => {
    for (const len of [0, 1, 4]) {
      const { reader } = recorder();
      const b = new Uint8Array(4 + 5 + 8);
      new DataView(b.buffer).setUint32(0, len);
      expect(() => reader.feed(b)).toThrow(/bad frame length/);
    }
  });

  test("a length over the cap throws as soon as the length arrives", () => {
    const { reader } = recorder(1024);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, 1025);
    expect(() => reader.feed(b)).toThrow(/bad frame length 1025/);
  });

  test("before authentication the cap is PREAUTH_MAX_FRAME_BYTES; raising it applies to the frames after", () => {
    const big = "x".repeat(PREAUTH_MAX_FRAME_BYTES);
    const hello = encode([{ type: FrameType.HELLO, id: 0, text: "hi" }]);
    const call = encode([{ type: FrameType.CALL, id: 1, text: big }]);
    const stream = new Uint8Array(hello.length + call.length);
    stream.set(hello);
    stream.set(call, hello.length);
    // Refused: the second frame's length is over the pre-authentication cap.
    const refused = recorder(PREAUTH_MAX_FRAME_BYTES);
    expect(() => refused.reader.feed(stream)).toThrow(/bad frame length/);
    expect(refused.frames.length).toBe(1);
    // Accepted when the first frame authenticates the peer (the handler raises the cap).
    const frames: number[] = [];
    const reader: FrameReader = new FrameReader((type) => {
      frames.push(type);
      if (type === FrameType.HELLO) reader.setMaxFrame(MAX_FRAME_BYTES);
    }, PREAUTH_MAX_FRAME_BYTES);
    reader.feed(stream);
    expect(frames).toEqual([FrameType.HELLO, FrameType.CALL]);
  });

  test("a 4 MiB frame fed in 1 KiB chunks arrives intact", () => {
    const tail = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < tail.length; i++) tail[i] = (i * 7) & 0xff;
    const bytes = encode([
      { type: FrameType.RESULT, id: 3, text: "t", tail },
      { type: FrameType.RESULT, id: 4, text: "next" },
    ]);
    const { reader, frames } = recorder();
    for (let pos = 0; pos < bytes.length; pos += 1024) reader.feed(bytes.slice(pos, pos + 1024));
    expect(frames).toEqual(
      expected([
        { type: FrameType.RESULT, id: 3, text: "t", tail },
        { type: FrameType.RESULT, id: 4, text: "next" },
      ]),
    );
  });

  test("garbage after a good frame throws after delivering the good one", () => {
    const good = encode([{ type: FrameType.RESULT, id: 5, text: "ok" }]);
    const stream = new Uint8Array(good.length + 4);
    stream.set(good);
    stream.set([0xff, 0xff, 0xff, 0xff], good.length);
    const { reader, frames } = recorder();
    expect(() => reader.feed(stream)).toThrow();
    expect(frames.length).toBe(1);
  });
});

describe("call head", () => {
  function roundTrip(head: CallHead, input: string): { head: CallHead; input: string } {
    const text = encodeCallHead(head);
    const frame = encode([{ type: FrameType.CALL, id: 1, text, tail: enc.encode(input) }]);
    let payload = new Uint8Array(0);
    new FrameReader((_t, _i, p) => (payload = p.slice())).feed(frame);
    const out = splitCall(payload);
    return { head: out.head, input: decodeText(out.input) };
  }

  test("user, request id, funcNo and time left survive; nonce absent stays absent", () => {
    const out = roundTrip({ f: 1001, u: "u1", r: "req-abc", t: 29_999 }, '{"x":1}');
    expect(out.head).toEqual({ f: 1001, u: "u1", r: "req-abc", t: 29_999 });
    expect("n" in out.head).toBe(false);
    expect(out.input).toBe('{"x":1}');
  });

  test("a null user stays null", () => {
    const out = roundTrip({ f: 1000, u: null, r: "r1", t: 5 }, "null");
    expect(out.head.u).toBeNull();
    expect(out.input).toBe("null");
  });

  test("a nonce and its timestamp survive", () => {
    const out = roundTrip({ f: 1002, u: "alice", r: "r2", t: 100, n: ["Abc_def-0123456789", 1_700_000_000] }, "{}");
    expect(out.head).toEqual({ f: 1002, u: "alice", r: "r2", t: 100, n: ["Abc_def-0123456789", 1_700_000_000] });
  });

  test("a unicode user survives", () => {
    for (const u of ["用户", "🙂emoji", "Ärger ß", "用".repeat(42) + "ab"]) {
      expect(roundTrip({ f: 1001, u, r: "r3", t: 1 }, "{}").head.u).toBe(u);
    }
  });

  test("the input keeps its exact bytes, newlines and tabs included", () => {
    const input = '{\n\t"a": "用户\\n",\n\t"b": [1, 2]\n}';
    expect(roundTrip({ f: 1000, u: "u", r: "r", t: 1 }, input).input).toBe(input);
    expect(roundTrip({ f: 1000, u: "u", r: "r", t: 1 }, "").input).toBe("");
  });

  test("time left is sent as whole non-negative milliseconds", () => {
    expect(roundTrip({ f: 1, u: null, r: "r", t: 12.9 }, "{}").head.t).toBe(12);
    expect(roundTrip({ f: 1, u: null, r: "r", t: -40 }, "{}").head.t).toBe(0);
  });

  test("a payload without a head line or with a wrong field count throws", () => {
    expect(() => splitCall(enc.encode("1001\t5\tr\t\t\tu"))).toThrow();
    expect(() => splitCall(enc.encode("1001\t5\tr\n{}"))).toThrow(/malformed/);
  });
});

/**
 * A socket as Bun's behaves: write() takes at most what the kernel has room for and returns
 * that count; the rest of the data is dropped, not queued.
 */
class FakeSocket implements WritableSocket {
  readonly written: number[] = [];
  writes = 0;
  constructor(public room: number) {}
  write(data: Uint8Array): number {
    this.writes++;
    const n = Math.min(this.room, data.length);
    for (let i = 0; i < n; i++) this.written.push(data[i]!);
    this.room -= n;
    return n;
  }
  end(): void {}
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("outbox", () => {
  test("every byte is written in order across partial writes and drains", async () => {
    const rand = rng(3);
    const socket = new FakeSocket(1000);
    const outbox = new Outbox(socket);
    const all: Sent[] = [];
    const send = (frames: Sent[]) => {
      for (const f of frames) {
        expect(outbox.send(f.type, f.id, f.text, f.tail)).toBe(true);
        all.push(f);
      }
    };
    send(randomFrames(50, rand));
    await tick();
    // The kernel took 1000 bytes; the rest waits for drain.
    expect(socket.written.length).toBe(1000);
    expect(outbox.buffered).toBeGreaterThan(0);
    // Frames sent while a backlog waits must queue behind it.
    send(randomFrames(30, rand));
    await tick();
    expect(socket.written.length).toBe(1000);
    for (let round = 0; outbox.buffered > 0; round++) {
      expect(round).toBeLessThan(10_000);
      socket.room = 1 + Math.floor(rand() * 3000);
      outbox.onDrain();
      if (round % 5 === 0) send(randomFrames(3, rand));
      await tick();
    }
    const bytes = new Uint8Array(socket.written);
    expect(hex(bytes)).toBe(hex(encode(all)));
    const { reader, frames } = recorder();
    reader.feed(bytes);
    expect(frames).toEqual(expected(all));
  });

  test("a tick's frames leave in one write when the socket has room", async () => {
    const socket = new FakeSocket(1 << 20);
    const outbox = new Outbox(socket);
    const sent = randomFrames(25, rng(4));
    for (const f of sent) outbox.send(f.type, f.id, f.text, f.tail);
    expect(socket.writes).toBe(0);
    await tick();
    expect(socket.writes).toBe(1);
    expect(outbox.buffered).toBe(0);
    expect(hex(new Uint8Array(socket.written))).toBe(hex(encode(sent)));
  });

  test("a socket that takes nothing keeps everything for the drain", async () => {
    const socket = new FakeSocket(0);
    const outbox = new Outbox(socket);
    const sent = randomFrames(10, rng(5));
    for (const f of sent) outbox.send(f.type, f.id, f.text, f.tail);
    await tick();
    expect(socket.written.length).toBe(0);
    expect(outbox.buffered).toBe(encode(sent).length);
    outbox.onDrain(); // still no room: nothing lost
    expect(outbox.buffered).toBe(encode(sent).length);
    socket.room = Infinity;
    outbox.onDrain();
    await tick();
    expect(outbox.buffered).toBe(0);
    expect(hex(new Uint8Array(socket.written))).toBe(hex(encode(sent)));
  });

  test("past maxBuffered send() refuses and the refused frame is never written", async () => {
    const socket = new FakeSocket(0);
    const outbox = new Outbox(socket, 200);
    const accepted: Sent[] = [];
    let refused = 0;
    for (let i = 0; i < 50; i++) {
      const f: Sent = { type: FrameType.CALL, id: i, text: `{"i":${i},"pad":"${"p".repeat(20)}"}` };
      if (outbox.send(f.type, f.id, f.text)) accepted.push(f);
      else refused++;
      if (i % 10 === 9) await tick();
    }
    expect(refused).toBeGreaterThan(0);
    expect(accepted.length).toBeLessThan(50);
    expect(outbox.buffered).toBeGreaterThan(200);
    // Once drained, room comes back.
    socket.room = Infinity;
    outbox.onDrain();
    await tick();
    expect(outbox.buffered).toBe(0);
    expect(hex(new Uint8Array(socket.written))).toBe(hex(encode(accepted)));
    expect(outbox.send(FrameType.RESULT, 99, "again")).toBe(true);
  });

  test("after close() nothing more is sent", async () => {
    const socket = new FakeSocket(0);
    const outbox = new Outbox(socket);
    outbox.send(FrameType.RESULT, 1, "one");
    await tick();
    outbox.close();
    expect(outbox.buffered).toBe(0);
    expect(outbox.send(FrameType.RESULT, 2, "two")).toBe(false);
    socket.room = Infinity;
    outbox.onDrain();
    await tick();
    expect(socket.written.length).toBe(0);
  });
});
