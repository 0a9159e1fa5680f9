/**
 * Scenario D's processes: the "existing Python service" — two uWSGI + Flask processes
 * (bench/contenders/flask_app.py, the study's uWSGI settings) that each listen twice, on a Unix
 * socket speaking the uwsgi protocol (the study's nginx transport) and on a loopback HTTP port
 * (what qdp's bridge and a plain nginx proxy speak; uWSGI closes it after each answer, see below) — and the nginx fronts that
 * pin users to them with `hash $http_x_qdp_user`, the routing SessionManager's deployment
 * would use. qdp's bridge forwards to the very same processes, so one run compares the fronts.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitForHttp } from "./net.ts";
import { isAlive, spawnManaged, stopManaged, type Managed } from "./procs.ts";
import { benchNginxConf, somaxconn, startFailure, studyAppArgs, uwsgiListen, UWSGI_PARAMS, type ServerContext, type ServerSpec } from "./servers.ts";

/** Starts the two backends and fills `ctx.legacy`; returns their stop. */
export async function startLegacyBackends(ctx: ServerContext): Promise<{ stop: () => Promise<void>; note: string }> {
  const dir = join(ctx.tmp, "legacy");
  mkdirSync(dir, { recursive: true });
  // nginx workers run unprivileged when started as root: they must reach the sockets.
  chmodSync(ctx.tmp, 0o755);
  chmodSync(dir, 0o755);
  const backlog = uwsgiListen();
  const procs: Managed[] = [];
  const sockets: string[] = [];
  const urls: string[] = [];
  for (const i of [0, 1]) {
    const sock = join(dir, `uwsgi-${i}.sock`);
    const port = await freePort();
    sockets.push(sock);
    urls.push(`http://127.0.0.1:${port}`);
    procs.push(
      spawnManaged({
        name: `legacy-uwsgi-${i}`,
        logDir: dir,
        env: { PYTHONHOME: undefined, PYTHONPATH: undefined },
        cmd: [
          "uwsgi",
          "--plugins",
          "python3,gevent_python3",
          "--socket",
          sock,
          "--chmod-socket=666",
          // Plain --http-socket (a connection per call): uWSGI 2.0.21's gevent loop aborts (a
          // libev assertion) on a kept-alive --http11-socket connection.
          "--http-socket",
          `127.0.0.1:${port}`,
          ...studyAppArgs(backlog),
        ],
      }),
    );
  }
  const stop = async () => {
    for (const m of procs) await stopManaged(m, "SIGTERM", 5000);
    ctx.legacy = undefined;
  };
  try {
    for (const [i, url] of urls.entries()) {
      await waitForHttp(`${url}/uwsgi/`, { alive: () => isAlive(procs[i]!) });
      const until = Date.now() + 10_000;
      while (!existsSync(sockets[i]!)) {
        if (Date.now() > until) throw new Error(`${sockets[i]} never appeared`);
        await Bun.sleep(50);
      }
    }
  } catch (err) {
    const failed = procs.find((m) => !isAlive(m)) ?? procs[0]!;
    await stop();
    throw startFailure(failed, err);
  }
  ctx.legacy = { sockets, urls };
  return {
    stop,
    note: `backends: 2 uWSGI (the study's settings: 1 process, gevent 1000, listen ${backlog}) + Flask, each on a Unix socket (uwsgi protocol) and a loopback HTTP port (--http-socket: one connection per call)`,
  };
}

/**
 * nginx pinning users to the backends with `hash $http_x_qdp_user` (non-consistent: the same
 * backend for a user as qdp's bridge picks), over the uwsgi protocol (the study's transport)
 * or HTTP (qdp's transport).
 */
export function nginxHashServer(id: string, label: string, transport: "uwsgi" | "http"): ServerSpec {
  return {
    id,
    label,
    async start(ctx) {
      if (!ctx.legacy) throw new Error("the legacy backends are not running");
      const dir = join(ctx.tmp, id);
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o755);
      const port = await freePort();
      const servers =
        transport === "uwsgi" ? ctx.legacy.sockets.map((s) => `server unix:${s};`) : ctx.legacy.urls.map((u) => `server ${u.slice("http://".length)};`);
      const location = transport === "uwsgi" ? `include ${UWSGI_PARAMS};\n            uwsgi_pass legacy;` : `proxy_pass http://legacy;`;
      writeFileSync(
        join(dir, "nginx.conf"),
        benchNginxConf({
          generatedBy: "bench/lib/legacy.ts",
          dir,
          workers: ctx.nginxWorkers,
          http: `    upstream legacy {
        hash $http_x_qdp_user;
        ${servers.join("\n        ")}
    }
    server {
        listen 127.0.0.1:${port} backlog=${uwsgiListen()};
        location / {
            ${location}
        }
    }`,
        }),
      );
      const m = spawnManaged({ name: id, logDir: dir, cmd: ["nginx", "-c", join(dir, "nginx.conf"), "-p", `${dir}/`] });
      const baseUrl = `http://127.0.0.1:${port}`;
      try {
        await waitForHttp(`${baseUrl}/uwsgi/`, { alive: () => isAlive(m) });
      } catch (err) {
        await stopManaged(m, "SIGTERM", 3000);
        throw startFailure(m, err);
      }
      return {
        id,
        baseUrl,
        roots: [m.pid],
        alive: () => isAlive(m),
        stop: () => stopManaged(m, "SIGTERM", 5000),
        note: `nginx worker_processes ${ctx.nginxWorkers}, hash $http_x_qdp_user, ${transport === "uwsgi" ? "uwsgi_pass over Unix sockets" : "proxy_pass HTTP"} (somaxconn ${somaxconn()})`,
      };
    },
  };
}

/**
 * The forward file of qdp's bridge in scenario E: 2000 → the two backends, echo body schema,
 * over HTTP (the backends' --http-socket ports) or over the uwsgi protocol (the very Unix
 * sockets nginx's uwsgi row uses).
 */
export function writeBridgeFile(ctx: ServerContext, name: string, transport: "http" | "uwsgi" = "http"): string {
  if (!ctx.legacy) throw new Error("the legacy backends are not running");
  const path = join(ctx.tmp, `${name}.forward.json`);
  writeFileSync(
    path,
    JSON.stringify([
      {
        funcNos: "2000",
        name: "legacy.echo",
        backends: transport === "uwsgi" ? ctx.legacy.sockets.map((s) => `uwsgi://${s}`) : ctx.legacy.urls,
        path: "/qdp",
        maxInflight: 2000,
        // uWSGI's --http-socket closes after each answer without saying so (see above); the
        // uwsgi protocol takes a connection per call whatever this says.
        keepAlive: false,
        input: {
          type: "object",
          properties: { symbol: { type: "string", minLength: 1 }, qty: { type: "integer", minimum: 0 }, note: { type: "string" } },
          required: ["symbol"],
        },
      },
    ]),
  );
  return path;
}
