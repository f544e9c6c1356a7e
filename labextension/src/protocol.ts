/**
 * The messages of the `wasinn.timeline` comm (the kernel side is wasinn_jupyter/panel/feed.py, which says the
 * protocol in full): kernel -> panel `hello`, `records` (start and duration in a float64 buffer, the other fields
 * as rows under `keys`) and `reset`; panel -> kernel `subscribe`.
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

export interface IRecordsBatch {
  type: 'records';
  generation: number;
  keys: string[];
  rows: unknown[][];
  dropped: number;
}

export interface IReset {
  type: 'reset';
  generation: number;
  clock_ns?: number;
}

export type KernelMessage = IHello | IRecordsBatch | IReset;

/** A batch's plotted columns: start_ns and duration_ns of each row, from the message's one buffer. */
export function plottedColumns(buffer: ArrayBuffer | ArrayBufferView | undefined, count: number): Float64Array {
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
    bytes = bytes.slice(offset, offset + count * 16);
    offset = 0;
  }
  return new Float64Array(bytes, offset, count * 2);
}
