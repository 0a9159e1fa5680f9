import { test } from "bun:test";
import { freePort, startCluster } from "/work/main/test/support/cluster.ts";
test("probe", async () => {
  const t0 = Date.now();
  const c = await startCluster({ workers: 1, env: { QDP_MONGO_URL: `mongodb://127.0.0.1:${freePort()}/qdp` }, noWait: true });
  while (!c.output().includes("cannot reach MongoDB")) await Bun.sleep(100);
  console.log("seen after", Date.now() - t0);
  const t1 = Date.now();
  const code = await c.stop();
  console.log("stop took", Date.now() - t1, "code", code);
  console.log(c.output().slice(0, 3000));
});
