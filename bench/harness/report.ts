/**
 * The pieces every report is made of: Markdown tables (what docs/benchmarks.md
 * carries), a plain aligned table for the terminal, and figures set against
 * the floor (the same work with nothing of ours in the way) as ratios.
 */

/** `figure | ours | floor | ours / floor`: the header of every comparison with a floor. */
export function floorHeader(ours: string, floor: string): string[] {
  return ['figure', ours, floor, `${ours} / ${floor}`];
}

/**
 * `a / b` as `1.23x`; `none` ('-' by default) when either is missing, the
 * floor's figure is not positive (a ratio to it means nothing) or the ratio
 * is not a number.
 */
export function ratio(
  a: number | undefined,
  b: number | undefined,
  { suffix = 'x', none = '-' }: { suffix?: string; none?: string } = {},
): string {
  if (a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a / b)) return none;
  return `${(a / b).toFixed(2)}${suffix}`;
}

/** A figure with `digits` decimals; '-' when it is NaN or infinite (nothing was measured). */
export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

/** Bold in Markdown: the headline figures. */
export function bold(text: string): string {
  return `**${text}**`;
}

/**
 * A Markdown table, unpadded (Prettier pads it when it lands in the docs);
 * `align` has one letter per column, `l` or `r`.
 */
export function markdownTable(
  header: readonly string[],
  align: string,
  rows: readonly (readonly string[])[],
): string[] {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line([...align].map((a) => (a === 'r' ? '---:' : '---'))), ...rows.map(line)];
}

/** A plain-text table for the terminal: the first column left-aligned, the others right-aligned. */
export function alignedTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join('  ');
  return [render(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(render)].join('\n');
}
