/**
 * What a worker is running, readable by the supervisor when the worker cannot answer: a small
 * file in the runtime directory, memory-mapped by the worker (MAP_SHARED), written as a handler
 * is entered and marked as it returns. A worker whose event loop is blocked cannot say what
 * blocked it over IPC, but the page it wrote just before is there for the supervisor to read.
 *
 * The cost per call is a few hundred nanoseconds (no syscall: a store into mapped memory). Only a
 * handler's synchronous part is bracketed: a loop blocked after an `await` shows the last
 * handler entered, marked as not inside it, which is all a process can know from outside.
 *
 * Layout (little-endian): [0] 1 while inside a handler's synchronous part; [4..8) funcNo;
 * [8..16) epoch ms when entered; [16..18) text length; [18..) `name\nrequestId\nuser` in UTF-8.
 * The supervisor creates the file (zeroed) before it spawns the worker and removes it after the
 * worker exits; hop-server.ts's clean-up of leftovers removes it too.
 */
import { openSync, closeSync, readFileSync, writeSync } from "node:fs";

export const BOARD_BYTES = 512;
const TEXT_AT = 18;

/** `w<index>-g<gen>.board` next to the worker's hop socket. */
export function callBoardPath(runtimeDir: string, index: number, gen: number): string {
  return `${runtimeDir}/w${index}-g${gen}.board`;
}

/** Matches the names of board files, for the clean-up of a runtime directory. */
export const CALL_BOARD_NAME = /^w\d+-g\d+\.board$/;

/** The supervisor's side: make the zeroed file the worker maps (mode 0600). */
export function createCallBoard(path: string): void {
  const fd = openSync(path, "w", 0o600);
  try {
    writeSync(fd, new Uint8Array(BOARD_BYTES));
  } finally {
    closeSync(fd);
  }
}

/** What the board says. `inside` false: the handler named had returned (or none was entered). */
export interface BoardReading {
  inside: boolean;
  funcNo: number;
  name: string;
  requestId: string;
  user: string | null;
  enteredAt: number;
}

/** Reads a board file; null when there is none or no handler was ever entered. */
export function readCallBoard(path: string): BoardReading | null {
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch {
    return null;
  }
  if (b.length < TEXT_AT) return null;
  const enteredAt = b.readDoubleLE(8);
  if (enteredAt === 0) return null;
  const len = Math.min(b.readUInt16LE(16), b.length - TEXT_AT);
  const [name = "", requestId = "", user = ""] = b
    .subarray(TEXT_AT, TEXT_AT + len)
    .toString("utf8")
    .split("\n");
  return { inside: b[0] === 1, funcNo: b.readUInt32LE(4), name, requestId, user: user === "" ? null : user, enteredAt };
}

/** What the executor calls around a handler's synchronous part. */
export interface CallTracker {
  enter(funcNo: number, name: string, requestId: string, user: string | null): void;
  leave(): void;
}

/** The worker's side: maps the board; without a file (an older supervisor, a removed dir) tracks nothing. */
export function openCallBoard(path: string): CallTracker | null {
  let mem: Uint8Array;
  try {
    mem = Bun.mmap(path, { shared: true });
  } catch {
    return null;
  }
  if (mem.length < BOARD_BYTES) return null;
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const text = mem.subarray(TEXT_AT);
  const enc = new TextEncoder();
  return {
    enter(funcNo, name, requestId, user) {
      const { written } = enc.encodeInto(`${name}\n${requestId}\n${user ?? ""}`, text);
      view.setUint32(4, funcNo, true);
      view.setFloat64(8, Date.now(), true);
      view.setUint16(16, written, true);
      mem[0] = 1;
    },
    leave() {
      mem[0] = 0;
    },
  };
}
