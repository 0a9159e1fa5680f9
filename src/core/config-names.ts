/**
 * Catching typos in configuration names: an unknown `QDP_*` environment variable (or config
 * file key) is named with the closest known one, so `QDP_PROT=9000` is not silently ignored.
 * Pure TypeScript.
 */

/** Variables the server sets or reads for itself and its tests; never typos. */
export const INTERNAL_VARIABLES: readonly string[] = ["QDP_WORKER_INDEX", "QDP_WORKER_GEN", "QDP_WORKER_HANDOFF", "QDP_CLUSTER_SECRET", "QDP_FUZZ_SEED"];
/** Prefixes of variables that belong to tests and benchmarks (`QDP_TEST_MONGO_URL`). */
const INTERNAL_PREFIXES = ["QDP_TEST_", "QDP_BENCH_"];

/** Edit distance (insert, delete, substitute, swap of neighbours). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name closest to `name`, or null when none is plausibly meant. */
export function closestName(name: string, known: readonly string[]): string | null {
  const upper = name.toUpperCase();
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(upper, k);
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  // A third of the name may differ (QDP_ is shared by all, so measure the rest).
  return best !== null && bestD <= Math.max(2, Math.floor((upper.length - 4) / 3)) ? best : null;
}

export interface UnknownVariable {
  name: string;
  /** The closest known variable, when one is close. */
  closest: string | null;
}

/** `QDP_*` names in `env` that the server does not read. */
export function unknownVariables(env: Record<string, string | undefined>, known: readonly string[]): UnknownVariable[] {
  const out: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!/^QDP_/i.test(name) || known.includes(name) || INTERNAL_VARIABLES.includes(name)) continue;
    if (INTERNAL_PREFIXES.some((p) => name.startsWith(p))) continue;
    out.push({ name, closest: closestName(name, known) });
  }
  return out;
}

/** "QDP_PROT (did you mean QDP_PORT?)". */
export function describeUnknown(u: UnknownVariable): string {
  return u.closest === null ? u.name : `${u.name} (did you mean ${u.closest}?)`;
}
