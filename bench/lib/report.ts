/** What the benchmarks print: markdown tables and the figures in them. */

/**
 * A markdown table, columns padded to their widest cell. `align` per column (default: left);
 * a right-aligned column gets a `---:` separator.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly ('left' | 'right')[] = []): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const right = (c: number) => align[c] === 'right';
  const line = (r: readonly string[]) => `| ${r.map((cell, c) => (right(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ')} |`;
  const separator = `|${widths.map((w, c) => (right(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), separator, ...rows.map(line)].join('\n');
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The q-quantile of sorted values (the value at floor(q * n)), null when there are none. */
export function quantile(sorted: readonly number[], q: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** A fraction as a percentage: `0.1234` -> `12.34 %`. */
export const percent = (fraction: number, digits = 2): string => `${(fraction * 100).toFixed(digits)} %`;

/** Milliseconds as seconds: `2.70 s`. */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** A count, shortened: 12.3k, 4.56M, 1.20G. */
export const count = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n)));
