/** Reading the JUnit report `bun test --reporter=junit` writes (see test/full-run.ts). */

/** Each failed test case of a JUnit report: its file, name and failure text. */
export function junitFailures(xml: string): Array<{ file: string; name: string; message: string }> {
  const out: Array<{ file: string; name: string; message: string }> = [];
  // Attributes are read as name="value" pairs, so a ">" or "/" inside a test's name cannot end the tag.
  for (const m of xml.matchAll(/<testcase((?:\s+[\w:-]+="[^"]*")*)\s*(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = m[1]!;
    const failure = /<(failure|error)\b[^>]*>([\s\S]*?)<\/\1>/.exec(m[2] ?? "");
    if (!failure) continue;
    const attr = (name: string) => unescapeXml(new RegExp(`\\b${name}="([^"]*)"`).exec(attrs)?.[1] ?? "");
    const group = attr("classname");
    out.push({ file: attr("file"), name: group ? `${group} > ${attr("name")}` : attr("name"), message: unescapeXml(failure[2]!).trimEnd() });
  }
  return out;
}

function unescapeXml(s: string): string {
  return s.replace(/&(#\d+|#x[0-9a-f]+|lt|gt|amp|quot|apos);/gi, (_, e: string) => {
    if (e[0] === "#") return String.fromCodePoint(e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" }[e.toLowerCase()]!;
  });
}
