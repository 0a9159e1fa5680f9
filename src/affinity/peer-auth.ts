/**
 * Mutual proof between workers that they belong to the same cluster. The hop sockets live in a
 * 0700 directory with 0600 files, which already keeps other users out; on top of that each side
 * proves the cluster secret before anything else crosses the connection:
 *
 *   listener → dialer   HELLO {challenge: cL}
 *   dialer   → listener HELLO {index, gen, challenge: cD, mac: proof("dialer")}
 *   listener → dialer   HELLO {ok: true, mac: proof("listener")}
 *
 * Both proofs are HMAC(cluster secret, role | cL | cD | dialer index/gen | listener index/gen):
 * fresh challenges from both sides make a recorded proof useless later, and the role in the
 * MAC makes the two proofs differ, so neither side can get the other to compute the proof it
 * owes (a reflection). The dialer checks the listener's proof against the index and generation
 * the supervisor gave for that path, so whoever holds a socket path without the secret never
 * receives a call. The cluster secret is made fresh by the supervisor at start and passed to
 * workers in their environment; it never leaves the host and is never logged.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export type HopRole = "dialer" | "listener";

/** Everything both proofs cover. */
export interface HopTranscript {
  listenerChallenge: string;
  dialerChallenge: string;
  dialer: { index: number; gen: number };
  listener: { index: number; gen: number };
}

/** How long either side waits for the handshake to finish before closing the connection. */
export const HANDSHAKE_TIMEOUT_MS = 5000;

export function newChallenge(): string {
  return randomBytes(18).toString("base64url");
}

/** A challenge as `newChallenge` makes them: nothing that could blur the MAC's `|` fields. */
export function isChallenge(v: unknown): v is string {
  return typeof v === "string" && /^[A-Za-z0-9_-]{16,64}$/.test(v);
}

/** A worker index or generation as the handshake carries them. */
export function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

export function prove(secret: string, role: HopRole, t: HopTranscript): string {
  return createHmac("sha256", secret)
    .update(`qdp-hop-v2|${role}|${t.listenerChallenge}|${t.dialerChallenge}|${t.dialer.index}|${t.dialer.gen}|${t.listener.index}|${t.listener.gen}`)
    .digest("hex");
}

/** Whether `mac` is `role`'s proof over `t` (constant-time compare). */
export function verify(secret: string, role: HopRole, t: HopTranscript, mac: unknown): boolean {
  if (typeof mac !== "string" || !/^[0-9a-f]{64}$/.test(mac)) return false;
  const want = Buffer.from(prove(secret, role, t), "hex");
  const got = Buffer.from(mac, "hex");
  return got.length === want.length && timingSafeEqual(got, want);
}
