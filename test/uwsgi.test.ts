/**
 * The uwsgi protocol: the packet encoder byte for byte (a packet computed by hand, lengths over
 * 255 bytes, UTF-8, a var too large refused), the vars a request becomes (nginx's
 * uwsgi_params), and the client against raw Unix-socket servers that answer well and badly.
 * The bridge in front of real uWSGI processes is in bridge-uwsgi.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeUwsgiPacket, UwsgiPacketError } from "../src/core/uwsgi-packet.ts";
import { UpstreamHttpError, type UpstreamFailure } from "../src/upstream/http1-client.ts";
import { uwsgiRequest, uwsgiVars, type UwsgiRequest } from "../src/upstream/uwsgi-client.ts";

const dir = mkdtempSync(join(tmpdir(), "qdp-uwsgi-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads a packet back: header fields, vars in order, body. */
function decode(p: Buffer): { modifier1: number; size: number; modifier2: number; vars: Array<[string, string]>; body: Buffer } {
  const size = p.readUInt16LE(1);
  const vars: Array<[string, string]> = [];
  let at = 4;
  while (at < 4 + size) {
    const k = p.readUInt16LE(at);
    const key = p.toString("utf8", at + 2, at + 2 + k);
    at += 2 + k;
    const v = p.readUInt16LE(at);
    vars.push([key, p.toString("utf8", at + 2, at + 2 + v)]);
    at += 2 + v;
  }
  return { modifier1: p[0]!, size, modifier2: p[3]!, vars, body: p.subarray(4 + size) };
}

describe("encodeUwsgiPacket", () => {
  test("byte-exact against a packet computed by hand", () => {
    const p = encodeUwsgiPacket(
      [
        ["REQUEST_METHOD", "POST"],
        ["PATH_INFO", "/qdp"],
      ],
      Buffer.from("{}"),
    );
    // vars: (2+14+2+4) + (2+9+2+4) = 22 + 17 = 39 = 0x27
    const expected = Buffer.concat([
      Buffer.from([0x00, 0x27, 0x00, 0x00]),
      Buffer.from([0x0e, 0x00]),
      Buffer.from("REQUEST_METHOD"),
      Buffer.from([0x04, 0x00]),
      Buffer.from("POST"),
      Buffer.from([0x09, 0x00]),
      Buffer.from("PATH_INFO"),
      Buffer.from([0x04, 0x00]),
      Buffer.from("/qdp"),
      Buffer.from("{}"),
    ]);
    expect(p.toString("hex")).toBe(expected.toString("hex"));
  });

  test("lengths over 255 bytes are little-endian u16; UTF-8 values are counted in bytes", () => {
    const long = "x".repeat(300);
    const p = encodeUwsgiPacket([
      ["HTTP_X_LONG", long],
      ["HTTP_X_USER", "用户-é"],
    ]);
    // 2+11+2+300 + 2+11+2+9 = 339 = 0x0153
    expect([...p.subarray(0, 4)]).toEqual([0, 0x53, 0x01, 0]);
    expect([...p.subarray(4 + 2 + 11, 4 + 2 + 11 + 2)]).toEqual([0x2c, 0x01]);
    const back = decode(p);
    expect(back.vars).toEqual([
      ["HTTP_X_LONG", long],
      ["HTTP_X_USER", "用户-é"],
    ]);
    expect(back.body.length).toBe(0);
    expect(p.length).toBe(4 + 339);
  });

  test("a var over 65,535 bytes, or vars over 65,535 in all, are refused with a sentence, never truncated", () => {
    expect(() => encodeUwsgiPacket([["HTTP_X_BIG", "é".repeat(40_000)]])).toThrow(
      new UwsgiPacketError("uwsgi var HTTP_X_BIG holds 80000 bytes: at most 65535"),
    );
    const half = "y".repeat(40_000);
    expect(() =>
      encodeUwsgiPacket([
        ["A", half],
        ["B", half],
      ]),
    ).toThrow(/uwsgi vars of 80010 bytes in all: at most 65535/);
    // At the limit exactly it fits.
    expect(encodeUwsgiPacket([["K", "z".repeat(65_535 - 5)]]).readUInt16LE(1)).toBe(65_535);
  });
});

describe("the request as uwsgi vars (nginx's uwsgi_params)", () => {
  const req: UwsgiRequest = {
    address: { unix: "/run/app.sock" },
    method: "POST",
    uri: "/legacy/qdp%20x?a=1",
    headers: { "content-type": "application/json", accept: "application/json", "x-request-id": "req-1", traceparent: "00-abc-def-01" },
    body: Buffer.from('{"funcNo":1}'),
  };
  test("Unix socket", () => {
    expect(uwsgiVars(req, "")).toEqual([
      ["REQUEST_METHOD", "POST"],
      ["REQUEST_URI", "/legacy/qdp%20x?a=1"],
      ["PATH_INFO", "/legacy/qdp x"],
      ["QUERY_STRING", "a=1"],
      ["SERVER_PROTOCOL", "HTTP/1.1"],
      ["CONTENT_TYPE", "application/json"],
      ["CONTENT_LENGTH", "12"],
      ["SERVER_NAME", "localhost"],
      ["SERVER_PORT", "80"],
      ["REMOTE_ADDR", "127.0.0.1"],
      ["HTTP_HOST", "localhost"],
      ["HTTP_ACCEPT", "application/json"],
      ["HTTP_X_REQUEST_ID", "req-1"],
      ["HTTP_TRACEPARENT", "00-abc-def-01"],
    ]);
  });
  test("TCP: the backend's host and port, this end's address", () => {
    const vars = new Map(uwsgiVars({ ...req, address: { hostname: "::1", port: 3031 } }, "::1"));
    expect([vars.get("SERVER_NAME"), vars.get("SERVER_PORT"), vars.get("HTTP_HOST"), vars.get("REMOTE_ADDR")]).toEqual(["::1", "3031", "[::1]:3031", "::1"]);
  });
});

/** A Unix-socket server that collects each whole packet and answers with `answer`. */
function server(name: string, answer: (packet: Buffer, write: (s: string) => void, end: () => void, reset: () => void) => void) {
  const path = join(dir, `${name}.sock`);
  const packets: Buffer[] = [];
  const listener = Bun.listen<{ buf: Buffer | null }>({
    unix: path,
    socket: {
      open(s) {
        s.data = { buf: null };
      },
      data(s, chunk) {
        const buf = (s.data.buf = s.data.buf === null ? chunk : Buffer.concat([s.data.buf, chunk]));
        if (buf.length < 4) return;
        const { vars } = decode(buf);
        const length = Number(new Map(vars).get("CONTENT_LENGTH"));
        if (buf.length < 4 + buf.readUInt16LE(1) + length) return;
        packets.push(buf);
        answer(
          buf,
          (x) => s.write(x),
          () => s.end(),
          () => s.terminate(),
        );
      },
    },
  });
  return { path, packets, stop: () => listener.stop(true) };
}

const post = (path: string, body = '{"a":"é"}', signal?: AbortSignal) =>
  uwsgiRequest({
    address: { unix: path },
    method: "POST",
    uri: "/qdp",
    headers: { "content-type": "application/json", "x-request-id": "r-1" },
    body: Buffer.from(body),
    signal,
  });

describe("uwsgiRequest against raw Unix-socket servers", () => {
  test("the packet arrives whole; a close-delimited answer (uWSGI's) is read to the close", async () => {
    const s = server("ok", (p, write, end) => {
      write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
      write(JSON.stringify({ body: decode(p).body.toString() }));
      end();
    });
    try {
      const body = "é".repeat(50_000); // a body larger than one socket write
      const r = await post(s.path, body);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString())).toEqual({ body });
      const sent = decode(s.packets[0]!);
      expect([sent.modifier1, sent.modifier2]).toEqual([0, 0]);
      expect(new Map(sent.vars).get("HTTP_X_REQUEST_ID")).toBe("r-1");
      expect(new Map(sent.vars).get("CONTENT_LENGTH")).toBe(String(Buffer.byteLength(body)));
    } finally {
      s.stop();
    }
  });

  test("Content-Length and chunked answers resolve without waiting for the close", async () => {
    const s = server("framed", (p, write) => {
      if (decode(p).body.toString() === "chunked") write("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
      else write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]");
    });
    try {
      expect((await post(s.path, "length")).body.toString()).toBe("[]");
      const c = await post(s.path, "chunked");
      expect([c.status, c.body.toString()]).toEqual([201, "{}"]);
    } finally {
      s.stop();
    }
  });

  const bad: Array<[string, Parameters<typeof server>[1], UpstreamFailure]> = [
    ["garbage, then a close", (_p, write, end) => (write("\x00\x01garbage that is not HTTP\r\n\r\n"), end()), "bad-answer"],
    ["a close before any answer", (_p, _w, end) => end(), "closed-before-answer"],
    ["a reset mid-answer", (_p, write, _e, reset) => (write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"), setTimeout(reset, 5)), "closed-mid-answer"],
  ];
  for (const [name, answer, kind] of bad) {
    test(`${name} → UpstreamHttpError ${kind}`, async () => {
      const s = server(name.replaceAll(/\W/g, "-"), answer);
      try {
        const err = await post(s.path).catch((e) => e);
        expect(err).toBeInstanceOf(UpstreamHttpError);
        expect((err as UpstreamHttpError).kind).toBe(kind);
      } finally {
        s.stop();
      }
    });
  }

  test("no such socket (ENOENT) and a path nobody listens on (ECONNREFUSED) are 'connect'", async () => {
    const missing = await post(join(dir, "missing.sock")).catch((e) => e);
    expect((missing as UpstreamHttpError).kind).toBe("connect");
    expect((missing as Error).message).toContain("ENOENT");
    // A path nobody listens on, as a crashed server leaves its socket file behind: the kernel
    // refuses the connect (bridge-uwsgi.test.ts does it with a killed uWSGI).
    const stale = join(dir, "stale.sock");
    writeFileSync(stale, "");
    const refused = await post(stale).catch((e) => e);
    expect((refused as UpstreamHttpError).kind).toBe("connect");
    expect((refused as Error).message).toContain("ECONNREFUSED");
  });

  test("an abort ends the call at once", async () => {
    const s = server("silent", () => {});
    try {
      const t0 = performance.now();
      const err = await post(s.path, "{}", AbortSignal.timeout(30)).catch((e) => e);
      expect((err as Error).name).toBe("TimeoutError");
      expect(performance.now() - t0).toBeLessThan(500);
    } finally {
      s.stop();
    }
  });
});
