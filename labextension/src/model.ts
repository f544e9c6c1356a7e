/**
 * The records of one notebook's kernel, column by column (typed arrays, so 100,000 calls plot without objects
 * in the hot loop), and what the panel and the status bar read from them.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { fieldReader, IHello, IRecordsBatch, IReset, numericColumns } from './protocol';

export const KIND_CALL = 0;
export const KIND_LIFECYCLE = 1;

/** A marker the kernel did not record: a `%wasinn reset` or a kernel restart. */
export interface IMarker {
  startNs: number;
  label: string;
}

/** Which records the panel shows: null for "all". */
export interface IFilter {
  graph: string | null;
  guest: string | null;
  op: string | null;
}

/** Strings seen in one column, each given a small index once. */
export class Dictionary {
  readonly values: string[] = [];
  private _index = new Map<string, number>();

  code(value: unknown): number {
    const text = value === null || value === undefined ? '' : String(value);
    let code = this._index.get(text);
    if (code === undefined) {
      code = this.values.length;
      this.values.push(text);
      this._index.set(text, code);
    }
    return code;
  }

  find(value: string | null): number {
    return value === null ? -1 : (this._index.get(value) ?? -2);
  }

  clear(): void {
    this.values.length = 0;
    this._index.clear();
  }
}

export class TimelineModel {
  /** Records held; columns are valid up to this index. */
  size = 0;
  seq = new Float64Array(0);
  start = new Float64Array(0);
  duration = new Float64Array(0);
  /** log10 of each duration (at least 1 ns), computed once on arrival: the plot's y. */
  logDuration = new Float32Array(0);
  op = new Uint16Array(0);
  graph = new Uint16Array(0);
  guest = new Uint16Array(0);
  kind = new Uint8Array(0);
  ok = new Uint8Array(0);
  /** Each record's other fields stay in the batch they came in (no object per record): its batch and row. */
  batches: IRecordsBatch[] = [];
  batchOf = new Int32Array(0);
  rowOf = new Int32Array(0);
  readonly ops = new Dictionary();
  readonly graphs = new Dictionary();
  readonly guests = new Dictionary();
  markers: IMarker[] = [];
  /** Records the kernel could not send (its bound, or its timeline's ring, dropped them). */
  dropped = 0;
  /** Extents of what is held, kept as records arrive: time over every record, latency over the calls. */
  tMin = Infinity;
  tMax = -Infinity;
  logMin = Infinity;
  logMax = -Infinity;
  /** Operations that have calls (not only lifecycle events): the legend. */
  readonly callOps = new Set<number>();
  /** Bumped by clear(): a view that drew records up to some index must start again. */
  clears = 0;
  /** Which kernel process (bumped on a restart or a new kernel) and session (`%wasinn reset`). */
  epoch = 0;
  generation = 0;
  /** perf_counter_ns and wall-clock ns at one moment, from the kernel's hello: dates for the CSV. */
  clock: { clockNs: number; wallNs: number } | null = null;
  /** Calls that arrived, per browser-time slot, for calls per second. */
  private _arrivals: Array<[number, number]> = [];
  private _lastSeq = new Map<string, number>();
  private _changed = new Signal<this, void>(this);

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Index of the newest call record (not a lifecycle event), or -1. */
  lastCall = -1;

  hello(msg: IHello): void {
    this.clock = { clockNs: msg.clock_ns, wallNs: msg.wall_ns };
    this.generation = msg.generation;
  }

  reset(msg: IReset): void {
    this.generation = msg.generation;
    const at = msg.clock_ns ?? (this.size ? this.start[this.size - 1] : 0);
    this.markers.push({ startNs: at, label: 'reset' });
    this._changed.emit();
  }

  /** A new kernel process (a restart, or another kernel): sequence numbers start again. */
  newEpoch(label: string, atNs: number | null): void {
    this.epoch += 1;
    this.generation = 0;
    if (this.size) {
      this.markers.push({ startNs: atNs ?? this.start[this.size - 1], label });
      this._changed.emit();
    }
  }

  ingest(batch: IRecordsBatch, buffer: ArrayBuffer | ArrayBufferView | undefined, now: number): number {
    const count = batch.count;
    const numeric = numericColumns(buffer, count);
    const keys = batch.keys;
    const readers = keys.map(k => fieldReader(batch, k));
    const at = (name: string) => {
      const k = keys.indexOf(name);
      return k >= 0 ? readers[k] : () => null;
    };
    const [call, graph, guest, kind, outcome] = ['call', 'graph', 'guest', 'kind', 'outcome'].map(at);
    const dedup = `${this.epoch}:${batch.generation}`;
    let lastSeq = this._lastSeq.get(dedup) ?? -1;
    this._reserve(this.size + count);
    let added = 0;
    let calls = 0;
    for (let r = 0; r < count; r++) {
      const seq = numeric[3 * r];
      if (seq <= lastSeq) {
        continue; // a replay overlapping what this page already holds
      }
      lastSeq = seq;
      const i = this.size + added;
      this.seq[i] = seq;
      const start = numeric[3 * r + 1];
      const duration = numeric[3 * r + 2];
      const logDuration = Math.log10(Math.max(duration, 1));
      this.start[i] = start;
      this.duration[i] = duration;
      this.logDuration[i] = logDuration;
      this.op[i] = this.ops.code(call(r) ?? '?');
      this.graph[i] = this.graphs.code(graph(r));
      this.guest[i] = this.guests.code(guest(r));
      const isCall = kind(r) !== 'lifecycle';
      this.kind[i] = isCall ? KIND_CALL : KIND_LIFECYCLE;
      this.tMin = Math.min(this.tMin, start);
      this.tMax = Math.max(this.tMax, isCall ? start + duration : start);
      if (isCall) {
        this.callOps.add(this.op[i]);
        this.logMin = Math.min(this.logMin, logDuration);
        this.logMax = Math.max(this.logMax, logDuration);
      }
      const result = outcome(r);
      this.ok[i] = result === null || result === 'ok' ? 1 : 0;
      this.batchOf[i] = this.batches.length;
      this.rowOf[i] = r;
      if (isCall) {
        this.lastCall = i;
        calls++;
      }
      added++;
    }
    this._lastSeq.set(dedup, lastSeq);
    if (added) {
      this.batches.push(batch);
    }
    this.size += added;
    this.generation = batch.generation;
    if (batch.dropped > 0) {
      this.dropped += batch.dropped;
    }
    if (calls) {
      this._arrivals.push([now, calls]);
      if (this._arrivals.length > 256) {
        this._arrivals.splice(0, 128);
      }
    }
    if (added) {
      this._changed.emit();
    }
    return added;
  }

  /** Calls that arrived in the last `windowMs` of browser time, per second. */
  callsPerSecond(now: number, windowMs = 1000): number {
    let total = 0;
    for (let k = this._arrivals.length - 1; k >= 0; k--) {
      const [t, n] = this._arrivals[k];
      if (now - t > windowMs) {
        break;
      }
      total += n;
    }
    return (total * 1000) / windowMs;
  }

  /** Browser time the newest call arrived at, or -Infinity. */
  get lastArrival(): number {
    const last = this._arrivals[this._arrivals.length - 1];
    return last ? last[0] : -Infinity;
  }

  /** The record's fields by name, start and duration included (hover details, CSV). */
  record(i: number): Record<string, unknown> {
    const out: Record<string, unknown> = { seq: this.seq[i] };
    const batch = this.batches[this.batchOf[i]];
    for (const key of batch.keys) {
      out[key] = fieldReader(batch, key)(this.rowOf[i]);
    }
    out.start_ns = this.start[i];
    out.duration_ns = this.duration[i];
    return out;
  }

  /** Whether record `i` passes `filter` (dictionary codes resolved once by `codes`). */
  static codes(model: TimelineModel, filter: IFilter): [number, number, number] {
    return [model.graphs.find(filter.graph), model.guests.find(filter.guest), model.ops.find(filter.op)];
  }

  /** Every index that passes `filter`, in order. */
  visible(filter: IFilter): number[] {
    const [g, u, o] = TimelineModel.codes(this, filter);
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) {
      if ((g === -1 || this.graph[i] === g) && (u === -1 || this.guest[i] === u) && (o === -1 || this.op[i] === o)) {
        out.push(i);
      }
    }
    return out;
  }

  clear(): void {
    this.size = 0;
    this.clears++;
    this.callOps.clear();
    this.tMin = Infinity;
    this.tMax = -Infinity;
    this.logMin = Infinity;
    this.logMax = -Infinity;
    this.batches = [];
    this.markers = [];
    this.dropped = 0;
    this.lastCall = -1;
    this._arrivals = [];
    this.ops.clear();
    this.graphs.clear();
    this.guests.clear();
    this._changed.emit();
  }

  private _reserve(n: number): void {
    if (n <= this.start.length) {
      return;
    }
    const cap = Math.max(n, this.start.length * 2, 1024);
    const grow = <T extends Float64Array | Float32Array | Int32Array | Uint16Array | Uint8Array>(a: T, make: (c: number) => T): T => {
      const b = make(cap);
      b.set(a.subarray(0, this.size) as never);
      return b;
    };
    this.seq = grow(this.seq, c => new Float64Array(c));
    this.start = grow(this.start, c => new Float64Array(c));
    this.duration = grow(this.duration, c => new Float64Array(c));
    this.logDuration = grow(this.logDuration, c => new Float32Array(c));
    this.op = grow(this.op, c => new Uint16Array(c));
    this.graph = grow(this.graph, c => new Uint16Array(c));
    this.guest = grow(this.guest, c => new Uint16Array(c));
    this.kind = grow(this.kind, c => new Uint8Array(c));
    this.ok = grow(this.ok, c => new Uint8Array(c));
    this.batchOf = grow(this.batchOf, c => new Int32Array(c));
    this.rowOf = grow(this.rowOf, c => new Int32Array(c));
  }
}
