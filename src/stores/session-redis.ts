/**
 * The session store port on Redis (QDP_SESSION_STORE=redis). One hash per user,
 * `<QDP_REDIS_PREFIX>session:<user>` = { v: version, d: JSON }, expiring QDP_SESSION_TTL_S after
 * its last write. A write is one Lua script, so the version check and the write are one atomic
 * step on the server: a stale owner can never overwrite a newer session.
 */
import { defineScript, RedisUnavailableError, type RedisClient, type RespValue } from "./redis-client.ts";
import { SessionStoreUnavailable, type SaveOutcome, type SessionBackend } from "./session-store.ts";

/**
 * KEYS[1] the session; ARGV = expected version, JSON, ttl in ms.
 * Returns the new version (>= 1), or minus the stored version (<= 0) when it is not the expected one.
 */
const SAVE = defineScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -v end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return v
`);

export interface RedisSessionOptions {
  client: RedisClient;
  /** QDP_REDIS_PREFIX, e.g. `qdp:`. */
  prefix: string;
  /** QDP_SESSION_TTL_S in ms. */
  ttlMs: number;
  /** Close the client with the store (false when the client is shared, e.g. with a replay store). */
  ownsClient?: boolean;
}

export function createRedisSessionBackend(o: RedisSessionOptions): SessionBackend {
  const key = (user: string) => `${o.prefix}session:${user}`;
  const ttl = String(Math.max(1, Math.floor(o.ttlMs)));
  return {
    kind: "redis",
    async load(user) {
      const r = await guard(o.client.send(["HMGET", key(user), "v", "d"]));
      if (!Array.isArray(r) || r[0] === null || r[1] === null) return null;
      return { version: Number(r[0]), text: String(r[1]) };
    },
    async version(user) {
      const r = await guard(o.client.send(["HGET", key(user), "v"]));
      return r === null ? 0 : Number(r);
    },
    save(user, text, expected): Promise<SaveOutcome> {
      return guard(o.client.evalScript(SAVE, [key(user)], [expected, text, ttl])).then((v) => {
        const r = Number(v);
        return r > 0 ? { ok: true, version: r } : { ok: false, stored: r === 0 ? 0 : -r };
      });
    },
    close() {
      if (o.ownsClient !== false) o.client.close();
    },
  };
}

/**
 * Any failure to get an answer is "unavailable"; an error reply (a bug, a wrong server) too,
 * with its text. A `.catch` rather than an async wrapper: this is on every call's path.
 */
function guard(p: Promise<RespValue>): Promise<RespValue> {
  return p.catch((err: Error) => {
    if (err instanceof RedisUnavailableError) throw new SessionStoreUnavailable(err.message, { cause: err });
    throw new SessionStoreUnavailable(`redis refused a session command: ${err.message}`, { cause: err });
  });
}
