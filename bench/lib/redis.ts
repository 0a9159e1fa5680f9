/** A private redis-server for a scenario (D, E): free port, AOF everysec, stopped by pid. */
import { join } from "node:path";
import { freePort } from "./net.ts";
import { spawnManaged, stopManaged } from "./procs.ts";
import type { ServerContext } from "./servers.ts";

/** redis-server's flags for a private instance: loopback only, AOF everysec (docs/stores.md), no RDB snapshots. */
export function redisArgs(port: number, dir: string): string[] {
  return ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"];
}

/** Starts it, fills `ctx.redisUrl` and `ctx.redisPid`, and returns a note and the stop. */
export async function startBenchRedis(ctx: ServerContext, scenario: string): Promise<{ notes: string[]; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = join(ctx.tmp, `redis-${scenario}`);
  await Bun.$`mkdir -p ${dir}`.quiet();
  const m = spawnManaged({
    name: "redis",
    logDir: dir,
    cmd: ["redis-server", ...redisArgs(port, dir)],
  });
  const until = Date.now() + 10_000;
  for (;;) {
    const r = Bun.spawnSync(["redis-cli", "-p", String(port), "ping"]);
    if (r.stdout.toString().trim() === "PONG") break;
    if (Date.now() > until) throw new Error(`redis-server did not start for scenario ${scenario}`);
    await Bun.sleep(100);
  }
  ctx.redisUrl = `redis://127.0.0.1:${port}/0`;
  ctx.redisPid = m.pid;
  const version = Bun.spawnSync(["redis-server", "--version"]).stdout.toString().trim().split(" ").slice(0, 3).join(" ");
  return { notes: [`${version}, private instance on 127.0.0.1, AOF appendfsync everysec, one connection per worker`], stop: () => stopManaged(m) };
}
