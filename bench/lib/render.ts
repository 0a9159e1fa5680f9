/** Table rendering (console text and Markdown) and a hand-written SVG bar chart. */

export interface Table {
  title: string;
  headers: string[];
  /** Right-align these columns (numbers). */
  numeric?: boolean[];
  rows: string[][];
  notes?: string[];
}

/** Fixed-width text table for the terminal. */
export function textTable(t: Table): string {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length)));
  const cell = (s: string, i: number) => (t.numeric?.[i] ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const line = (cells: string[]) => cells.map(cell).join("  ").trimEnd();
  const out = [t.title, line(t.headers), widths.map((w) => "-".repeat(w)).join("  "), ...t.rows.map(line)];
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join("\n");
}

/** GitHub-flavoured Markdown table. */
export function markdownTable(t: Table): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  const align = t.headers.map((_, i) => (t.numeric?.[i] ? "---:" : "---"));
  const out = [
    `### ${t.title}`,
    "",
    `| ${t.headers.map(esc).join(" | ")} |`,
    `| ${align.join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ];
  if (t.notes?.length) out.push("", ...t.notes.map((n) => `- ${n}`));
  return out.join("\n");
}

/** Formatting helpers shared by the scenarios. */
export const fmt = {
  int: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"),
  ms: (n: number) => (!Number.isFinite(n) ? "–" : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)),
  ratio: (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "–" : `${n >= 10 ? n.toFixed(1) : n.toFixed(2)}×`),
  pct: (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : "–"),
  mib: (bytes: number | undefined) => (bytes === undefined || !Number.isFinite(bytes) ? "–" : `${(bytes / 1048576).toFixed(0)} MiB`),
};

export interface Bar {
  label: string;
  median: number;
  min: number;
  max: number;
  /** Highlight (e.g. qdp variants). */
  accent?: boolean;
}

export interface Panel {
  title: string;
  bars: Bar[];
  /** A dashed vertical line, e.g. the ideal throughput. */
  reference?: { value: number; label: string };
}

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/**
 * Horizontal bar chart, one panel per case: bar = median, whisker = min–max over rounds,
 * each panel scaled to its own maximum.
 */
export function svgChart(title: string, unit: string, panels: Panel[]): string {
  const width = 940;
  const labelW = 270;
  const valueW = 110;
  const plotW = width - labelW - valueW - 20;
  const barH = 20;
  const gap = 8;
  const panelHead = 34;
  let y = 44;
  const parts: string[] = [];
  for (const p of panels) {
    parts.push(`<text x="10" y="${y + 18}" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
    y += panelHead;
    const values = p.bars.map((b) => (Number.isFinite(b.max) ? b.max : b.median));
    if (p.reference) values.push(p.reference.value);
    const top = Math.max(1e-9, ...values.filter(Number.isFinite));
    const x = (v: number) => labelW + (Math.max(0, v) / top) * plotW;
    const panelTop = y;
    for (const b of p.bars) {
      const cy = y + barH / 2;
      parts.push(`<text x="${labelW - 8}" y="${cy + 4}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
      if (Number.isFinite(b.median)) {
        const fill = b.accent ? "#2f6fdb" : "#9aa5b1";
        parts.push(`<rect x="${labelW}" y="${y}" width="${(x(b.median) - labelW).toFixed(1)}" height="${barH}" fill="${fill}"/>`);
        if (Number.isFinite(b.min) && Number.isFinite(b.max)) {
          const x1 = x(b.min).toFixed(1);
          const x2 = x(b.max).toFixed(1);
          parts.push(
            `<line x1="${x1}" y1="${cy}" x2="${x2}" y2="${cy}" stroke="#222" stroke-width="1.5"/>`,
            `<line x1="${x1}" y1="${y + 4}" x2="${x1}" y2="${y + barH - 4}" stroke="#222" stroke-width="1.5"/>`,
            `<line x1="${x2}" y1="${y + 4}" x2="${x2}" y2="${y + barH - 4}" stroke="#222" stroke-width="1.5"/>`,
          );
        }
        const v = b.median >= 100 ? Math.round(b.median).toLocaleString("en-US") : b.median.toFixed(2);
        parts.push(`<text x="${labelW + plotW + 10}" y="${cy + 4}" font-size="12">${esc(`${v} ${unit}`)}</text>`);
      } else {
        parts.push(`<text x="${labelW + 4}" y="${cy + 4}" font-size="12" fill="#a00">not run</text>`);
      }
      y += barH + gap;
    }
    if (p.reference && Number.isFinite(p.reference.value)) {
      const rx = x(p.reference.value).toFixed(1);
      parts.push(
        `<line x1="${rx}" y1="${panelTop - 4}" x2="${rx}" y2="${y - gap + 4}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3"/>`,
        `<text x="${rx}" y="${panelTop - 8}" font-size="11" fill="#c0392b" text-anchor="end">${esc(p.reference.label)}</text>`,
      );
    }
    y += 10;
  }
  const height = y + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="26" font-size="17" font-weight="bold">${esc(title)}</text>`,
    ...parts,
    `<text x="10" y="${height - 8}" font-size="11" fill="#555">bar = median over rounds, whisker = min–max; each panel has its own scale</text>`,
    `</svg>`,
    "",
  ].join("\n");
}
