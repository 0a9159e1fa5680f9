import { describe, expect, test } from "bun:test";
import { createAllowList, parseAddress } from "../src/core/cidr.ts";

const hex = (ip: string) => {
  const b = parseAddress(ip);
  return b === null ? null : Buffer.from(b).toString("hex");
};

describe("address parsing", () => {
  test("IPv4 and its mapped form are the same 16 bytes", () => {
    expect(hex("10.1.2.3")).toBe("00000000000000000000ffff0a010203");
    expect(hex("::ffff:10.1.2.3")).toBe(hex("10.1.2.3"));
    expect(hex("::FFFF:0a01:0203")).toBe(hex("10.1.2.3"));
  });

  test("IPv6 compressed and full forms agree", () => {
    expect(hex("::1")).toBe("00000000000000000000000000000001");
    expect(hex("0:0:0:0:0:0:0:1")).toBe(hex("::1"));
    expect(hex("fd00::")).toBe("fd000000000000000000000000000000");
    expect(hex("2001:db8::8a2e:370:7334")).toBe(hex("2001:0db8:0000:0000:0000:8a2e:0370:7334"));
    expect(hex("1:2:3:4:5:6:7::")).toBe("00010002000300040005000600070000");
    expect(hex("::")).toBe("0".repeat(32));
  });

  test("brackets and zones as socket APIs report them", () => {
    expect(hex("[::1]")).toBe(hex("::1"));
    expect(hex("fe80::1%eth0")).toBe(hex("fe80::1"));
  });

  test("garbage is rejected", () => {
    for (const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.-4",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "g::1",
      "1.2.3.4::",
      "::1.2.3.4:1",
      ":1::",
      "localhost",
    ]) {
      expect(hex(bad)).toBeNull();
    }
  });
});

describe("allow list", () => {
  const list = createAllowList("10.0.0.0/8,127.0.0.1/32,::1/128,fd00::/8");

  test("IPv4 ranges", () => {
    expect(list.allows("10.0.0.0")).toBe(true);
    expect(list.allows("10.255.255.255")).toBe(true);
    expect(list.allows("11.0.0.0")).toBe(false);
    expect(list.allows("9.255.255.255")).toBe(false);
    expect(list.allows("127.0.0.1")).toBe(true);
    expect(list.allows("127.0.0.2")).toBe(false);
  });

  test("IPv4-mapped IPv6 addresses match IPv4 rules", () => {
    expect(list.allows("::ffff:10.9.8.7")).toBe(true);
    expect(list.allows("::ffff:127.0.0.1")).toBe(true);
    expect(list.allows("::ffff:192.168.0.1")).toBe(false);
  });

  test("IPv6 ranges", () => {
    expect(list.allows("::1")).toBe(true);
    expect(list.allows("0:0:0:0:0:0:0:1")).toBe(true);
    expect(list.allows("::2")).toBe(false);
    expect(list.allows("fd12:3456::1")).toBe(true);
    expect(list.allows("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(list.allows("fe00::1")).toBe(false);
    expect(list.allows("fc00::1")).toBe(false);
  });

  test("an IPv6 rule does not accidentally admit IPv4 (and vice versa)", () => {
    expect(createAllowList("::/1").allows("10.0.0.1")).toBe(true); // ::ffff:a.b.c.d is inside ::/1, as it should be
    expect(createAllowList("8000::/1").allows("10.0.0.1")).toBe(false);
    expect(createAllowList("0.0.0.0/0").allows("::1")).toBe(false);
    expect(createAllowList("0.0.0.0/0").allows("203.0.113.9")).toBe(true);
  });

  test("non-byte-aligned prefixes", () => {
    const l = createAllowList("192.168.4.0/22,2001:db8:8000::/33");
    expect(l.allows("192.168.4.1")).toBe(true);
    expect(l.allows("192.168.7.255")).toBe(true);
    expect(l.allows("192.168.8.0")).toBe(false);
    expect(l.allows("192.168.3.255")).toBe(false);
    expect(l.allows("2001:db8:8000::1")).toBe(true);
    expect(l.allows("2001:db8:ffff::1")).toBe(true);
    expect(l.allows("2001:db8:7fff::1")).toBe(false);
  });

  test("bare addresses are single hosts; host bits under the prefix are ignored", () => {
    const l = createAllowList(" 192.0.2.7 , 2001:db8::42, 10.1.2.3/8");
    expect(l.ranges).toEqual(["192.0.2.7/32", "2001:db8::42/128", "10.0.0.0/8"]);
    expect(l.allows("192.0.2.7")).toBe(true);
    expect(l.allows("192.0.2.8")).toBe(false);
    expect(l.allows("2001:db8::42")).toBe(true);
    expect(l.allows("2001:db8::43")).toBe(false);
    expect(l.allows("10.200.0.1")).toBe(true);
  });

  test("unparseable client addresses are refused", () => {
    expect(list.allows("")).toBe(false);
    expect(list.allows("not-an-ip")).toBe(false);
  });

  test("no spec means open", () => {
    for (const spec of [undefined, "", " , "]) {
      const l = createAllowList(spec);
      expect(l.open).toBe(true);
      expect(l.allows("203.0.113.1")).toBe(true);
    }
    expect(list.open).toBe(false);
  });

  test("bad entries name the variable and the entry", () => {
    for (const bad of ["10.0.0.0/33", "::1/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/-1", "fe80::1%eth0", "example.com", "1::2::3/64", "10.0.0.0/8/8"]) {
      expect(() => createAllowList(`127.0.0.1,${bad}`)).toThrow(new RegExp(`^QDP_ALLOW_CIDRS: bad entry '${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}'`));
    }
  });
});
