/**
 * The function registry (replaces MessageDispatch): function number → service, with compiled
 * validators. A duplicate number or name stops start-up with a message naming both services.
 */
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { TSchema } from "@sinclair/typebox";
import { QdpError } from "../core/errors.ts";
import type { AnyService } from "./types.ts";

export interface RegisteredService {
  readonly def: AnyService;
  readonly check: TypeCheck<TSchema>;
  /** The output schema's validator; null where the output is passed through (forwarded ranges). */
  readonly checkOut: TypeCheck<TSchema> | null;
}

export interface ValidationIssue {
  path: string;
  message: string;
}

/** A block of function numbers served by one definition per number (a forwarded range). */
export interface ServiceRange {
  readonly from: number;
  readonly to: number;
  /** How messages name the range, e.g. `QDP_FORWARD_FILE entry 0 (legacy.pricing, 2000-2099)`. */
  readonly label: string;
  /** The name the range's functions share. */
  readonly name: string;
  readonly input: TSchema;
  /** The definition of one number of the range. */
  define(funcNo: number): AnyService;
}

export class Registry {
  private byNo = new Map<number, RegisteredService>();
  private byName = new Map<string, number>();
  private ranges: ServiceRange[] = [];

  constructor(defs: readonly AnyService[] = []) {
    for (const d of defs) this.add(d);
  }

  add(def: AnyService): void {
    if (!Number.isSafeInteger(def.funcNo) || def.funcNo <= 0) {
      throw new Error(`service ${def.name}: function number ${def.funcNo} must be a positive integer`);
    }
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/.test(def.name)) {
      throw new Error(`service ${def.funcNo}: name ${JSON.stringify(def.name)} must be dotted lower-case, like demo.echo`);
    }
    const range = this.ranges.find((r) => def.funcNo >= r.from && def.funcNo <= r.to);
    if (range) throw new Error(`${range.label} forwards ${def.funcNo}, which is also the local service ${def.name}`);
    const other = this.byNo.get(def.funcNo);
    if (other) throw new Error(`duplicate function number ${def.funcNo}: ${other.def.name} and ${def.name}`);
    const otherNo = this.byName.get(def.name);
    if (otherNo !== undefined) throw new Error(`duplicate service name ${def.name}: functions ${otherNo} and ${def.funcNo}`);
    if (def.timeoutMs !== undefined && !(Number.isSafeInteger(def.timeoutMs) && def.timeoutMs > 0)) {
      throw new Error(`service ${def.name}: timeoutMs ${def.timeoutMs} must be a positive whole number of milliseconds`);
    }
    this.byNo.set(def.funcNo, { def, check: TypeCompiler.Compile(def.input), checkOut: TypeCompiler.Compile(def.output) });
    this.byName.set(def.name, def.funcNo);
  }

  /**
   * Registers every number of a range under the range's name, all sharing one compiled
   * validator. A number that is already a service, or a name already taken, stops start-up with
   * a message naming both.
   */
  addRange(range: ServiceRange): void {
    for (const { def } of this.byNo.values()) {
      if (def.funcNo < range.from || def.funcNo > range.to) continue;
      const owner = this.ranges.find((r) => def.funcNo >= r.from && def.funcNo <= r.to);
      throw new Error(
        owner
          ? `${range.label} overlaps ${owner.label} at ${def.funcNo}`
          : `${range.label} forwards ${def.funcNo}, which is also the local service ${def.name}`,
      );
    }
    const otherNo = this.byName.get(range.name);
    if (otherNo !== undefined) throw new Error(`${range.label} has the name of the service at function ${otherNo} (${range.name})`);
    const check = TypeCompiler.Compile(range.input);
    for (let n = range.from; n <= range.to; n++) this.byNo.set(n, { def: range.define(n), check, checkOut: null });
    this.byName.set(range.name, range.from);
    this.ranges.push(range);
  }

  get(funcNo: number): RegisteredService | undefined {
    return this.byNo.get(funcNo);
  }

  /** The service or UNKNOWN_FUNCTION. */
  require(funcNo: number): RegisteredService {
    const s = this.byNo.get(funcNo);
    if (!s) throw new QdpError("UNKNOWN_FUNCTION", `no function ${funcNo}`);
    return s;
  }

  list(): RegisteredService[] {
    return [...this.byNo.values()].sort((a, b) => a.def.funcNo - b.def.funcNo);
  }

  /** Validates input; throws VALIDATION with field paths in `details`. */
  validate(service: RegisteredService, input: unknown): void {
    if (service.check.Check(input)) return;
    const issues: ValidationIssue[] = [];
    for (const e of service.check.Errors(input)) {
      issues.push({ path: e.path === "" ? "/" : e.path, message: e.message });
      if (issues.length >= 20) break;
    }
    throw new QdpError("VALIDATION", `input of ${service.def.name} is invalid: ${issues[0]?.path} ${issues[0]?.message}`, {
      details: issues,
    });
  }
}
