import { expect, test } from "bun:test";
import { junitFailures } from "./support/junit.ts";

test("junitFailures: only failed cases, with their describe, whatever their names hold", () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="a.test.ts" file="a.test.ts">
  <testcase name="ok &gt; with / and &gt;" classname="" time="0.1" file="a.test.ts" line="2" assertions="1" />
  <testcase name="bad → &lt;x&gt;" classname="group" time="0.2" file="a.test.ts" line="3" assertions="1">
    <failure type="AssertionError" message="m">AssertionError: expect(received).toBe(expected)&#10;&#10;Expected: &quot;a&quot;&#10;Received: &#x27;b&#x27;&#10;</failure>
  </testcase>
  <testcase name="skipped" classname="" file="a.test.ts"><skipped /></testcase>
</testsuite></testsuites>`;
  expect(junitFailures(xml)).toEqual([
    { file: "a.test.ts", name: "group > bad → <x>", message: "AssertionError: expect(received).toBe(expected)\n\nExpected: \"a\"\nReceived: 'b'" },
  ]);
});
