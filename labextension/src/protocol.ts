/**
 * The messages of the `wasinn.timeline` comm (the kernel side is wasinn_jupyter/panel/feed.py, which says the
 * protocol in full): kernel -> panel `hello`, `records` (seq, start and duration in a float64 buffer, the other
 * fields column by column) and `reset`; panel -> kernel `subscribe`.
 */

/** The comm target both sides open. */
export const COMM_TARGET = 'wasinn.timeline';

export interface IHello {
  type: 'hello';
  generation: number;
  version: string;
  clock_ns: number;
  wall_ns: number;
  replay: boolean;
}

/** A field's values in a batch: one per record, or the distinct values and each record's index into them. */
export type Column = unknown[] | { values: unknown[]; index: number[] };

export interface IRecordsBatch {
  type: 'records';
  generation: number;
  count: number;
  keys: string[];
  columns: Record<string, Column>;
  constants: Record<string, unknown>;
  dropped: number;
}

export interface IReset {
  type: 'reset';
  generation: number;
  clock_ns?: number;
}

export type KernelMessage = IHello | IRecordsBatch | IReset;

/** A batch's numeric columns: seq, start_ns and duration_ns of each record, from the message's one buffer. */
export function numericColumns(buffer: ArrayBuffer | ArrayBufferView | undefined, count: number): Float64Array {
  if (!buffer) {
    throw new Error('a records message without its buffer');
  }
  let bytes: ArrayBuffer;
  let offset = 0;
  if (ArrayBuffer.isView(buffer)) {
    bytes = buffer.buffer as ArrayBuffer;
    offset = buffer.byteOffset;
  } else {
    bytes = buffer;
  }
  if (offset % 8 !== 0) {
    bytes = bytes.slice(offset, offset + count * 24);
    offset = 0;
  }
  return new Float64Array(bytes, offset, count * 3);
}

/** Read field `key` of record `r` in `batch`. */
export function fieldReader(batch: IRecordsBatch, key: string): (r: number) => unknown {
  const column = batch.columns[key];
  if (column === undefined) {
    const value = key in batch.constants ? batch.constants[key] : null;
    return () => value;
  }
  if (Array.isArray(column)) {
    return r => column[r];
  }
  return r => column.values[column.index[r]];
}
