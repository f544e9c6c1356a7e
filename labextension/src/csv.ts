/** The shown records as CSV, every field a column (the fields of one record that another lacks stay empty). */
import { TimelineModel } from './model';

function cell(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(model: TimelineModel, indices: number[]): string {
  const columns: string[] = [];
  const seen = new Set<string>();
  let lastKeys: string[] | null = null;
  for (const i of indices) {
    const keys = model.batches[model.batchOf[i]].keys;
    if (keys === lastKeys) {
      continue;
    }
    lastKeys = keys;
    for (const k of keys) {
      if (!seen.has(k)) {
        seen.add(k);
        columns.push(k);
      }
    }
  }
  const clock = model.clock;
  const header = ['seq', 'start_ns', 'duration_ns', ...(clock ? ['wall_time'] : []), ...columns];
  const lines = [header.join(',')];
  for (const i of indices) {
    const rec = model.record(i);
    const out = [cell(model.seq[i]), cell(model.start[i]), cell(model.duration[i])];
    if (clock) {
      out.push(new Date((clock.wallNs + (model.start[i] - clock.clockNs)) / 1e6).toISOString());
    }
    for (const k of columns) {
      out.push(cell(rec[k]));
    }
    lines.push(out.join(','));
  }
  return lines.join('\n') + '\n';
}

/** Hand `text` to the browser as a file download. */
export function download(text: string, filename: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
