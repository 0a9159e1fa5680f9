/**
 * `bun run qdp <command>`: the operator's command line (CONTRACT.md §5). It only dispatches;
 * each command lives in its own module under src/commands/.
 *
 * Exit status: 0 success, 1 the command failed (no server answers, a WARN from doctor, a wait
 * that timed out), 2 bad usage.
 */
import { type CommandIo, defaultIo, NoServerError, reloadCommand, stopCommand, UsageError } from "./commands/control.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { nginxConfCommand } from "./commands/nginx-conf.ts";
import { signCommand } from "./commands/sign-command.ts";
import { statusCommand } from "./commands/status.ts";
import { topCommand } from "./commands/top.ts";

export const USAGE = `Usage: qdp <command> [options]
  npm run qdp -- <command> [options]    (works right after npm install, no bun on the PATH needed)
  npm run status | reload | stop | top | doctor [-- options]
  bun run qdp <command> [options]       (with bun on the PATH)

Commands:
  status [--json] [--interval S]        workers as a table (req/s sampled over S seconds, default 1)
  top [--interval S] [--count N]        live view of workers and functions, refreshed every S seconds (default 2)
  reload [--wait] [--timeout S]         rolling reload (SIGHUP to the supervisor); --wait prints the new pids
  stop [--wait] [--timeout S]           graceful stop (SIGTERM); --wait until the supervisor has exited
  doctor [--json] [--connections N]     check kernel settings and limits; exit 1 on any WARN
  nginx-conf [--listen L] [--server-name N] [--workers N] [--direct-port-base B] [--host H]
                                        print an nginx front that routes calls straight to owners
  nginx-conf --hosts HOST:PORT,...      print an nginx front for several hosts (consistent hash)
  sign --key-id ID --target PATH [...]  sign one call (bun run qdp sign --help)
  help                                  this text

status, top, reload, stop and doctor find the server on QDP_STATS_HOST (default 127.0.0.1) at
--stats-port N, else QDP_STATS_PORT, else 9191, and send QDP_STATS_TOKEN when it is set.

Exit status: 0 ok, 1 failed (no server, doctor WARN, reload failed or wait timed out), 2 bad usage.`;

const COMMANDS: Record<string, (argv: string[], io: CommandIo) => Promise<number>> = {
  status: statusCommand,
  top: topCommand,
  reload: reloadCommand,
  stop: stopCommand,
  doctor: doctorCommand,
  "nginx-conf": nginxConfCommand,
  sign: async (argv, io) => signCommand(argv, io),
};

/** Runs one command line; returns the exit status. */
export async function runCli(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  const [name, ...rest] = argv;
  // Asking for help is a success; running with no command is a usage mistake.
  if (name === "help" || name === "--help" || name === "-h") {
    io.out(`${USAGE}\n`);
    return 0;
  }
  if (name === undefined) {
    io.err(`${USAGE}\n`);
    return 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`unknown command ${JSON.stringify(name)}\n\n${USAGE}\n`);
    return 2;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`qdp ${name}: ${err.message}\n(qdp help for usage)\n`);
      return 2;
    }
    if (err instanceof NoServerError) {
      io.err(`qdp ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) process.exitCode = await runCli(process.argv.slice(2));
