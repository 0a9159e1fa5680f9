/**
 * Stand-alone entry for `qdp sign`, so the command runs (and is tested as a process) without
 * the rest of the CLI: `bun src/commands/sign-command-main.ts --key-id ... --target ...`.
 */
import { signCommand } from "./sign-command.ts";

process.exitCode = signCommand(process.argv.slice(2));
