/**
 * The shape of the tree, checked (STYLE.md: "turn a promise into a check"): src/core imports
 * nothing from Bun, Elysia, MongoDB or the file system — only itself and pure Node modules — and
 * src has no import cycle (type-only imports included: a type cycle is still two modules that
 * cannot be read alone).
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = join(import.meta.dir, "..", "src");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Module specifiers of a file's static imports and re-exports. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gms)) out.push((m[1] ?? m[2])!);
  return out;
}

const ALL = files(SRC);

test("src/core imports only itself, node:buffer and node:crypto", () => {
  const bad: string[] = [];
  for (const f of ALL.filter((f) => relative(SRC, f).startsWith("core/"))) {
    for (const spec of imports(f)) {
      const ok = spec.startsWith("./") ? resolve(dirname(f), spec).startsWith(join(SRC, "core")) : spec === "node:buffer" || spec === "node:crypto";
      if (!ok) bad.push(`${relative(SRC, f)} imports ${spec}`);
    }
  }
  expect(bad).toEqual([]);
});

test("src has no import cycle", () => {
  const graph = new Map<string, string[]>();
  for (const f of ALL)
    graph.set(
      f,
      imports(f)
        .filter((s) => s.startsWith("."))
        .map((s) => resolve(dirname(f), s))
        .filter((t) => graph.has(t) || ALL.includes(t)),
    );
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (state.get(t) === "open") cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => relative(SRC, x)).join(" → "));
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of ALL) if (!state.has(f)) visit(f);
  expect(cycles).toEqual([]);
});
