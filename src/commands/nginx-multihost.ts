/**
 * `qdp nginx-conf --hosts A:P,B:P,...`: the nginx front for several qdp-server hosts
 * (CONTRACT.md §7). nginx picks the host with `hash $http_x_qdp_user consistent;` (ketama), so
 * a user's calls keep reaching one host and adding or removing a host moves only about 1/N of
 * the users; inside a host the hop picks the owner worker as usual. docs/multi-host.md explains
 * every directive printed here.
 *
 * The one rule this file must never break: a call that may have reached a host is never sent to
 * another one. nginx's `proxy_next_upstream error timeout` alone would also retry after a read
 * error or read timeout — i.e. after the host got the request and may have run it — but nginx
 * does that only for idempotent methods: `non_idempotent` is off by default, so a POST (every
 * call) is passed to the next host only while no byte of it was sent (connection refused or
 * reset while connecting, connect timeout). We do not add `non_idempotent`, and the test
 * `test/multi-host.test.ts` checks a POST to a hung host is answered 504 and never run twice.
 */

/** One upstream host as given on the command line. */
export interface HostPort {
  /** IPv4 address, host name, or IPv6 address without brackets. */
  host: string;
  port: number;
}

export interface MultiHostConfOptions {
  /** The hosts' public ports (QDP_HOST:QDP_PORT of each host), in any order. */
  hosts: HostPort[];
  /** `listen` of the server block: a port, or address:port. */
  listen: string;
  /** `server_name`; `_` matches any. */
  serverName: string;
  /** QDP_MAX_BODY, so nginx lets our own JSON 413 answer first. */
  maxBody: number;
  /** QDP_TIMEOUT_MS, so nginx waits at least as long as a call may run. */
  timeoutMs: number;
  /** QDP_KEEPALIVE_MS of the hosts: nginx must close an idle upstream connection before they do. */
  keepAliveMs: number;
  /** Idle keep-alive connections each nginx worker process keeps to the hosts, all hosts together (nginx's `keepalive`). */
  keepalive: number;
  /** Failed attempts within `failTimeoutS` after which nginx skips a host for `failTimeoutS`. */
  maxFails: number;
  /** Seconds: the window for `maxFails`, and how long a failed host is then skipped. */
  failTimeoutS: number;
  /** Seconds nginx waits to establish a connection to a host before trying the next one. */
  connectTimeoutS: number;
}

/** Parses `HOST:PORT,HOST:PORT,...` (IPv6 as `[addr]:port`); throws an Error naming the bad item. */
export function parseHosts(text: string): HostPort[] {
  const items = text.split(",").map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === ""))
    throw new Error(`--hosts ${JSON.stringify(text)}: expected HOST:PORT,HOST:PORT,... with no empty item`);
  const hosts: HostPort[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(item);
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535) throw new Error(`--hosts: ${JSON.stringify(item)} is not HOST:PORT (an IPv6 address goes in brackets: [::1]:8080)`);
    const host = (m[1] ?? m[2])!;
    const key = `${host.toLowerCase()}:${port}`;
    if (seen.has(key)) throw new Error(`--hosts: ${item} is listed twice (nginx would give it twice the users)`);
    seen.add(key);
    hosts.push({ host, port });
  }
  return hosts;
}

/** How nginx spells a host:port in `server`. */
export function hostPortText(h: HostPort): string {
  return h.host.includes(":") ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

/**
 * nginx's keepalive_timeout toward qdp-server: 5 s below the hosts' QDP_KEEPALIVE_MS (at most
 * nginx's usual 55 s), so nginx, not the host, closes an idle upstream connection and never
 * writes a call into one the host is closing.
 */
export function upstreamIdleS(keepAliveMs: number): number {
  return Math.max(1, Math.min(55, Math.floor(keepAliveMs / 1000) - 5));
}

/**
 * nginx's proxy_read/send_timeout: a call may run QDP_TIMEOUT_MS and then be answered 504 by
 * qdp-server itself; nginx waits 5 s longer, so the caller gets that JSON answer, not nginx's.
 */
export function proxyTimeoutS(timeoutMs: number): number {
  return Math.ceil(timeoutMs / 1000) + 5;
}

/**
 * The start of the `server {...}` block both fronts print (one host's workers, or several
 * hosts): listen, body limit, and the `location /` lines that pass a call through unchanged on a
 * kept-alive connection. The caller adds its own lines and closes both blocks.
 */
export function proxyServerHead(o: { listen: string; serverName: string; maxBody: number; timeoutMs: number; upstream: string }): string {
  const timeout = proxyTimeoutS(o.timeoutMs);
  return `server {
    listen ${o.listen};
    server_name ${o.serverName};

    # Above QDP_MAX_BODY (${o.maxBody}), so an oversized body gets qdp-server's JSON 413.
    client_max_body_size ${o.maxBody * 2};

    location / {
        # No URI after the upstream name: the request target goes through byte for byte, as the
        # v1 signature covers it (docs/signing.md).
        proxy_pass http://${o.upstream};
        # Keep-alive to the upstream needs HTTP/1.1 and no "Connection: close" from the client.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # X-QDP-User, X-QDP-Key-Id, X-QDP-Timestamp, X-QDP-Nonce, X-QDP-Signature and X-Request-Id
        # pass unchanged: nginx forwards request headers as they are.
        # A call may run QDP_TIMEOUT_MS (${o.timeoutMs} ms); wait a little longer for its 504.
        proxy_read_timeout ${timeout}s;
        proxy_send_timeout ${timeout}s;`;
}

/** The nginx text: `upstream qdp_hosts {...}` and a `server {...}`, for the http context. */
export function renderMultiHostConf(o: MultiHostConfOptions): string {
  if (o.hosts.length === 0) throw new Error("at least one host is needed");
  const servers = o.hosts.map((h) => `    server ${hostPortText(h)} max_fails=${o.maxFails} fail_timeout=${o.failTimeoutS}s;`).join("\n");
  // Idle upstream connections must be closed by nginx before the host closes them, else nginx
  // may write a call into a connection the host is closing (a 502 for a call that never ran).
  const idleS = upstreamIdleS(o.keepAliveMs);
  const list = o.hosts.map(hostPortText).join(",");
  return `# qdp-server front for ${o.hosts.length} host${o.hosts.length === 1 ? "" : "s"}: each user's calls go to one host (consistent hash of X-QDP-User).
# Generated by \`bun run qdp nginx-conf --hosts ${list}\`. Include it in the http {} context.
# Every directive is explained in docs/multi-host.md. To add or remove a host, regenerate with the
# new list and "nginx -s reload": with "consistent" only about 1/N of the users move.
#
# All hosts must share the UAP keys and one Redis: QDP_SESSION_STORE=redis (a moved user's
# session is loaded there) and QDP_REPLAY_STORE=redis (a nonce accepted by any host is refused
# by every host), same QDP_REDIS_URL and QDP_REDIS_PREFIX.
#
# UAP must send the user in X-QDP-User: a call naming its user only in the envelope's userId
# hashes the empty key, like calls without a user, and all of those reach the same host.
upstream qdp_hosts {
    # Passive-health state (max_fails) shared by all nginx worker processes.
    zone qdp_hosts 64k;
    hash $http_x_qdp_user consistent;
${servers}
    # Idle connections kept to the hosts by each nginx worker: no TCP handshake per call.
    keepalive ${o.keepalive};
    keepalive_requests 10000;
    keepalive_timeout ${idleS}s;  # below the hosts' QDP_KEEPALIVE_MS (${o.keepAliveMs} ms): nginx closes first
}

${proxyServerHead({ ...o, upstream: "qdp_hosts" })}
        # The whole body is read before a host is chosen (the default, kept explicit): a slow
        # client holds no host connection, and a call can still go elsewhere if the connect fails.
        proxy_request_buffering on;

        # A host that does not accept the connection within this is skipped (next host).
        proxy_connect_timeout ${o.connectTimeoutS}s;

        # Next host on the ring only for calls that never reached a host: "error" and "timeout"
        # also cover a failure after the request was sent, but nginx passes a POST on only if
        # no byte of it was sent ("non_idempotent" is off and must stay off). So a refused or
        # timed-out connect moves the call; a call a host may have run is answered 502/504 and
        # never re-sent. GETs (/healthz, /readyz, /swagger) are read-only and may be retried.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries ${o.hosts.length};
    }
}
`;
}
