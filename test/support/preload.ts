/**
 * Test preload (bunfig.toml `[test] preload`): runs once per `bun test` process, before any test
 * file. Keep it light — everything here delays every test file, including the fast in-process ones.
 *
 * MongoDB for tests is deliberately NOT started here: test files that need it call
 * `mongoTestUrl()` from `./ferretdb.ts`, which builds/starts FerretDB lazily, once per process,
 * and stops it when the process exits. Runs without such files never pay for it.
 */
export {};
