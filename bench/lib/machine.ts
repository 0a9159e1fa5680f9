/** bench/results/machine.md: what the numbers were measured on. */
import { cpus, totalmem } from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NOFILE } from "./procs.ts";
import { somaxconn, uwsgiListen } from "./servers.ts";

function run(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/bin:${process.env.PATH}` } });
  return `${r.stdout.toString()}${r.stderr.toString()}`.trim().split("\n")[0] ?? "";
}

function readFirst(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "?";
  }
}

export function machineFacts(nginxWorkers: string): Array<[string, string]> {
  const os = /PRETTY_NAME="([^"]+)"/.exec(readFirst("/etc/os-release"))?.[1] ?? "?";
  return [
    ["date", new Date().toISOString()],
    ["CPU", `${cpus().length} logical cores — ${cpus()[0]?.model ?? "?"}`],
    ["memory", `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ["OS / kernel", `${os} / ${run(["uname", "-r"])}`],
    ["bun", Bun.version],
    ["node", run(["node", "--version"])],
    ["nginx", run(["nginx", "-v"]).replace(/^nginx version: /, "")],
    ["uWSGI", run(["uwsgi", "--version"])],
    ["wrk", run(["wrk", "--version"]).replace(/\s+Copyright.*$/, "")],
    ["python (Debian, embedded by uWSGI)", run(["/usr/bin/python3", "--version"])],
    [
      "Flask / gevent / requests / pymongo",
      run(["/usr/bin/python3", "-c", "import flask,gevent,requests,pymongo;print(flask.__version__,gevent.__version__,requests.__version__,pymongo.version)"]),
    ],
    ["net.core.somaxconn", String(somaxconn())],
    ["uWSGI --listen used", `${uwsgiListen()} (the study's 8192, capped by somaxconn)`],
    ["nginx worker_processes", nginxWorkers],
    ["net.ipv4.ip_local_port_range", readFirst("/proc/sys/net/ipv4/ip_local_port_range").replace(/\s+/, "–")],
    ["fd limit of every spawned process", `${NOFILE} (prlimit --nofile; the shell's own limit is untouched)`],
  ];
}

export function writeMachine(dir: string, nginxWorkers: string): string {
  const facts = machineFacts(nginxWorkers);
  const md = [
    "# Benchmark machine",
    "",
    "| | |",
    "| --- | --- |",
    ...facts.map(([k, v]) => `| ${k} | ${v.replaceAll("|", "\\|")} |`),
    "",
    "**The load generator shares the machine.** wrk, the servers under test and (in scenario B) the slow",
    "upstream and the record store all run on these cores over loopback, so every number is a relative",
    "one: the contenders are measured under the same handicap, alternating round-robin, but none of",
    "them had the whole machine. On 2 cores wrk's 2 threads take a large share of the CPU.",
    "",
  ].join("\n");
  writeFileSync(join(dir, "machine.md"), md);
  return md;
}
