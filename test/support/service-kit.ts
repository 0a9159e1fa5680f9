/**
 * The test kit for service authors: run your service in-process with the real machinery — the
 * edge's validation, the executor, a session per user, the embedded record store in a temporary
 * directory, the real upstream client — and assert on what a caller would get.
 *
 * ```ts
 * const kit = createServiceKit({ services: [fxRate], settings: { PRICING_URL: up.url } });
 * const r = await kit.call(fxRate, { pair: "USDCNY" }, { user: "u1" });
 * expect(r).toMatchObject({ ok: true, data: { pair: "USDCNY" } });
 * kit.close();
 * ```
 *
 * For the whole server (processes, ports, signals) use `startCluster` from ./cluster.ts.
 */
import type { AnyService } from "../../src/services/types.ts";
import type { RecordStore } from "../../src/stores/record-store.ts";
import { createTestEdge } from "./edge.ts";

export type KitResult =
  | { ok: true; status: 200; data: any; headers: Headers }
  | { ok: false; status: number; error: { code: string; message: string; details?: unknown }; headers: Headers };

export interface ServiceKit {
  /** Calls a service as UAP would (POST /api/<funcNo>), with an optional user and headers. */
  call(service: AnyService | number, data: unknown, opts?: { user?: string; headers?: Record<string, string> }): Promise<KitResult>;
  /** A user's session as the owner holds it now (undefined before the first stateful call). */
  session(user: string): unknown;
  /** The record store the services wrote to. */
  records: RecordStore;
  close(): void;
}

export interface ServiceKitOptions {
  services: AnyService[];
  /** Values of the services' declared settings (and any QDP_* variable), as the environment would give them. */
  settings?: Record<string, string>;
  /** Two in-process workers with a real hop between them, so every call of a user runs at its owner. */
  hop?: boolean;
}

export function createServiceKit(o: ServiceKitOptions): ServiceKit {
  const edge = createTestEdge({ services: o.services, env: o.settings, hop: o.hop });
  return {
    async call(service, data, opts = {}) {
      const funcNo = typeof service === "number" ? service : service.funcNo;
      const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
      if (opts.user !== undefined) headers["x-qdp-user"] = opts.user;
      const res = await edge.app.handle(new Request(`http://localhost/api/${funcNo}`, { method: "POST", headers, body: JSON.stringify(data) }));
      const body = (await res.json()) as { ok: boolean; data?: unknown; error?: { code: string; message: string; details?: unknown } };
      return body.ok
        ? { ok: true, status: 200, data: body.data, headers: res.headers }
        : { ok: false, status: res.status, error: body.error!, headers: res.headers };
    },
    session(user) {
      for (const e of edge.executors) {
        const held = e.sessions.peek(user);
        if (held !== undefined) return held.state;
      }
      return undefined;
    },
    records: edge.records,
    close: () => edge.close(),
  };
}
