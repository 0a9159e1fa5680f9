/**
 * Mutual proof between workers that they belong to the same cluster. The hop sockets live in a
 * 0700 directory with 0600 files, which already keeps other users out; on top of that, a peer
 * must answer the listener's random challenge with HMAC(cluster secret, challenge | index)
 * before any call is accepted. The cluster secret is made fresh by the supervisor at start and
 * passed to workers in their environment; it never leaves the host and is never logged.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export function newChallenge(): string {
  return randomBytes(18).toString("base64url");
}

export function proveHello(secret: string, challenge: string, index: number, gen: number): string {
  return createHmac("sha256", secret).update(`qdp-hop|${challenge}|${index}|${gen}`).digest("hex");
}

export function checkHello(secret: string, challenge: string, index: number, gen: number, mac: unknown): boolean {
  if (typeof mac !== "string" || mac.length !== 64) return false;
  const want = Buffer.from(proveHello(secret, challenge, index, gen), "hex");
  const got = Buffer.from(mac, "hex");
  return got.length === want.length && timingSafeEqual(got, want);
}
