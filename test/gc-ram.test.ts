import { describe, expect, test } from "bun:test";
import { loadConfig } from "../src/core/config.ts";
import { totalmem } from "node:os";
import { AUTO_GC_RAM_CAP_MB, resolveGcRamMb, workerGcRam } from "../src/supervisor/gc-ram.ts";

const GIB = 1024 ** 3;

describe("QDP_GC_RAM_MB", () => {
  test("auto by default; 0 and MiB from 64 to 1048576 accepted; anything else refused by name", () => {
    expect(loadConfig({}, 2).gcRamMb).toBe("auto");
    expect(loadConfig({ QDP_GC_RAM_MB: "AUTO" }, 2).gcRamMb).toBe("auto");
    expect(loadConfig({ QDP_GC_RAM_MB: "0" }, 2).gcRamMb).toBe(0);
    expect(loadConfig({ QDP_GC_RAM_MB: "2048" }, 2).gcRamMb).toBe(2048);
    for (const bad of ["-1", "abc", "10", "2g", "1.5", "1048577", "0100"]) {
      expect(() => loadConfig({ QDP_GC_RAM_MB: bad }, 2)).toThrow(`QDP_GC_RAM_MB=${JSON.stringify(bad)}`);
    }
  });

  test("auto: the host's RAM shared by the workers, at most the cap, at least 64 MiB", () => {
    expect(resolveGcRamMb("auto", 2, 24 * GIB)).toBe(AUTO_GC_RAM_CAP_MB);
    expect(resolveGcRamMb("auto", 2, 2 * GIB)).toBe(1024);
    expect(resolveGcRamMb("auto", 3, 6 * GIB)).toBe(2048);
    expect(resolveGcRamMb("auto", 64, 1 * GIB)).toBe(64);
    // An explicit value is passed as is; 0 leaves the runtime's own reading.
    expect(resolveGcRamMb(8192, 2, 24 * GIB)).toBe(8192);
    expect(resolveGcRamMb(0, 2, 24 * GIB)).toBeNull();
  });

  test("the workers' environment: the resolved value in bytes, nothing for 0, and an operator's own BUN_JSC_forceRAMSize wins", () => {
    const mb = resolveGcRamMb("auto", 2, totalmem())!;
    expect(workerGcRam("auto", 2, {})).toEqual({ mb, env: { BUN_JSC_forceRAMSize: String(mb * 1024 * 1024) } });
    expect(workerGcRam(0, 2, {})).toEqual({ mb: null, env: {} });
    // The operator's value reaches the workers through the inherited environment, untouched.
    expect(workerGcRam("auto", 2, { BUN_JSC_forceRAMSize: String(2 * GIB) })).toEqual({ mb: 2048, env: {} });
    expect(workerGcRam(512, 2, { BUN_JSC_forceRAMSize: "lots" })).toEqual({ mb: null, env: {} });
  });
});
