/**
 * The latency-over-time plot, drawn by hand on one canvas: calls are written straight into an ImageData (a few
 * milliseconds for 100,000 marks, no objects per mark), axes and lifecycle markers are drawn over them with the
 * 2-D context. The plot keeps each drawn mark's position for hover lookups.
 */
import { IFilter, KIND_LIFECYCLE, TimelineModel } from './model';

/** Colours by operation, in order of first appearance (Tableau 10). */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#bcbd22',
  '#7f7f7f',
  '#aec7e8'
];
/** Calls that failed are drawn in this colour whatever their operation. */
export const ERROR_COLOR = '#d62728';
const MARKER_COLORS: Record<string, string> = {
  compile: '#6a51a3',
  instantiate: '#3182bd',
  run: '#31a354',
  exit: '#636363',
  trap: '#d62728',
  stopped: '#e6550d',
  close: '#969696',
  reset: '#000000',
  'kernel restart': '#000000',
  'new kernel': '#000000'
};

export function opColor(code: number): string {
  return PALETTE[code % PALETTE.length];
}

const MARGIN = { left: 58, right: 10, top: 20, bottom: 24 };

/** What hovering found: a record (a call or a lifecycle event) or a marker the kernel did not record. */
export type Hit = { index: number; x: number; y: number } | { marker: number; x: number; y: number };

export interface IRenderStats {
  points: number;
  markers: number;
  ms: number;
}

function rgba(hex: string): number {
  const v = parseInt(hex.slice(1), 16);
  // ImageData is RGBA in memory: little-endian uint32 ABGR.
  return (0xff << 24) | ((v & 0xff) << 16) | (v & 0xff00) | ((v >> 16) & 0xff);
}

function formatNs(ns: number): string {
  if (ns >= 1e9) {
    return `${+(ns / 1e9).toPrecision(3)} s`;
  }
  if (ns >= 1e6) {
    return `${+(ns / 1e6).toPrecision(3)} ms`;
  }
  if (ns >= 1e3) {
    return `${+(ns / 1e3).toPrecision(3)} µs`;
  }
  return `${Math.round(ns)} ns`;
}
export { formatNs };

export class TimelinePlot {
  readonly canvas = document.createElement('canvas');
  /** Drawn marks (CSS pixels) and their record indices, for hover. */
  private _px = new Float32Array(0);
  private _py = new Float32Array(0);
  private _pi = new Int32Array(0);
  private _count = 0;
  /** Drawn markers: x (CSS pixels) and either a record index (>= 0) or -1 - index into model.markers. */
  private _mx: number[] = [];
  private _mi: number[] = [];
  private _image: ImageData | null = null;
  /** What the image holds: marks of records [0, _drawn) of _model, drawn at the scales and filter of _key. */
  private _key = '';
  private _model: TimelineModel | null = null;
  private _drawn = 0;
  private _lifecycle: number[] = [];

  constructor() {
    this.canvas.className = 'wasinn-timeline-canvas';
  }

  /** Draw `model` as `filter` selects; returns how much was drawn and how long it took. */
  render(model: TimelineModel, filter: IFilter): IRenderStats {
    const t0 = performance.now();
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = Math.max(canvas.clientWidth, 100);
    const cssH = Math.max(canvas.clientHeight, 80);
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d')!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const plotW = cssW - MARGIN.left - MARGIN.right;
    const plotH = cssH - MARGIN.top - MARGIN.bottom;
    const pw = Math.max(1, Math.round(plotW * dpr));
    const ph = Math.max(1, Math.round(plotH * dpr));

    const n = model.size;
    const [g, u, o] = TimelineModel.codes(model, filter);
    const { start, logDuration, op, graph, guest, kind, ok } = model;

    // Scales: time over every record held (filters do not move the axes), log latency over the calls. The time
    // axis grows in steps of a quarter or so, so that while calls stream in most frames only add marks.
    let tMin = model.tMin;
    let tMax = model.tMax;
    for (const m of model.markers) {
      tMin = Math.min(tMin, m.startNs);
      tMax = Math.max(tMax, m.startNs);
    }
    if (!isFinite(tMin)) {
      tMin = 0;
      tMax = 1e9;
    }
    const range = roomyCeil(Math.max(tMax - tMin, 1e6) * 1.02);
    const x0 = tMin - range * 0.02;
    const x1 = tMin + range;
    let y0 = isFinite(model.logMin) ? Math.floor(model.logMin) : 3;
    let y1 = isFinite(model.logMax) ? Math.ceil(model.logMax) : 6;
    if (y1 - y0 < 1) {
      y1 = y0 + 1;
    }
    if (y1 === model.logMax) {
      y1 += 0.1; // a mark on the top edge stays inside
    }
    y0 -= 0.05;
    const sx = pw / (x1 - x0);
    const sy = ph / (y1 - y0);

    // Marks, straight into pixels: only those not drawn yet, unless the scales, size or filter changed.
    const key = [pw, ph, dpr, x0, x1, y0, y1, g, u, o, model.clears].join('|');
    if (!this._image || key !== this._key || model !== this._model || n < this._drawn) {
      if (!this._image || this._image.width !== pw || this._image.height !== ph) {
        this._image = ctx.createImageData(pw, ph);
      }
      new Uint32Array(this._image.data.buffer).fill(0);
      this._key = key;
      this._model = model;
      this._drawn = 0;
      this._count = 0;
      this._lifecycle = [];
    }
    const pixels = new Uint32Array(this._image.data.buffer);
    const colors = model.ops.values.map((_, c) => rgba(opColor(c)));
    const errorColor = rgba(ERROR_COLOR);
    const s = Math.max(2, Math.round(2.5 * dpr));
    const half = s >> 1;
    if (this._px.length < n) {
      const grow = <T extends Float32Array | Int32Array>(a: T, b: T): T => (b.set(a.subarray(0, this._count)), b);
      const cap = Math.max(n, this._px.length * 2);
      this._px = grow(this._px, new Float32Array(cap));
      this._py = grow(this._py, new Float32Array(cap));
      this._pi = grow(this._pi, new Int32Array(cap));
    }
    let count = this._count;
    const lifecycle = this._lifecycle;
    for (let i = this._drawn; i < n; i++) {
      if (kind[i] === KIND_LIFECYCLE) {
        if (u === -1 || guest[i] === u) {
          lifecycle.push(i);
        }
        continue;
      }
      if ((g !== -1 && graph[i] !== g) || (u !== -1 && guest[i] !== u) || (o !== -1 && op[i] !== o)) {
        continue;
      }
      const px = ((start[i] - x0) * sx) | 0;
      const py = (ph - 1 - (logDuration[i] - y0) * sy) | 0;
      const color = ok[i] ? colors[op[i]] : errorColor;
      const xa = Math.max(0, px - half);
      const xb = Math.min(pw, px - half + s);
      const ya = Math.max(0, py - half);
      const yb = Math.min(ph, py - half + s);
      for (let y = ya; y < yb; y++) {
        const row = y * pw;
        for (let x = xa; x < xb; x++) {
          pixels[row + x] = color;
        }
      }
      this._px[count] = MARGIN.left + px / dpr;
      this._py[count] = MARGIN.top + py / dpr;
      this._pi[count] = i;
      count++;
    }
    this._count = count;
    this._drawn = n;
    ctx.putImageData(this._image, Math.round(MARGIN.left * dpr), Math.round(MARGIN.top * dpr));

    // Axes, grid and markers, in CSS pixels.
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const style = getComputedStyle(canvas);
    const ink = style.getPropertyValue('--jp-ui-font-color2').trim() || '#616161';
    const grid = style.getPropertyValue('--jp-border-color2').trim() || '#e0e0e0';
    ctx.font = '10px sans-serif';
    ctx.fillStyle = ink;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const yPix = (v: number) => MARGIN.top + ((ph - 1 - (v - y0) * sy) / dpr);
    for (let d = Math.ceil(y0); d <= Math.floor(y1); d++) {
      const y = Math.round(yPix(d)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(MARGIN.left, y);
      ctx.lineTo(MARGIN.left + plotW, y);
      ctx.stroke();
      ctx.fillText(formatNs(10 ** d), MARGIN.left - 4, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const span = (x1 - x0) / 1e9;
    const step = niceStep(span / Math.max(2, Math.floor(plotW / 80)));
    const origin = tMin;
    for (let t = Math.ceil((x0 - origin) / 1e9 / step) * step; t <= (x1 - origin) / 1e9; t += step) {
      const x = MARGIN.left + ((origin + t * 1e9 - x0) * sx) / dpr;
      ctx.fillText(`${+t.toFixed(6)} s`, x, MARGIN.top + plotH + 4);
    }
    ctx.strokeStyle = ink;
    ctx.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, plotW, plotH);

    // Lifecycle markers (records) and the markers the panel adds (reset, restart).
    this._mx = [];
    this._mi = [];
    let lastLabel = -Infinity;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    const drawMarker = (t: number, label: string, id: number) => {
      const x = Math.round(MARGIN.left + ((t - x0) * sx) / dpr) + 0.5;
      const color = MARKER_COLORS[label] ?? '#444444';
      ctx.strokeStyle = color;
      ctx.globalAlpha = 0.5;
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top - 6);
      ctx.lineTo(x, MARGIN.top + plotH);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.fillStyle = color;
      ctx.fillRect(x - 2.5, MARGIN.top - 8, 5, 5);
      if (x - lastLabel > 60) {
        ctx.fillText(label, x + 4, 2);
        lastLabel = x;
      }
      this._mx.push(x);
      this._mi.push(id);
    };
    for (const i of lifecycle) {
      drawMarker(start[i], model.ops.values[op[i]], i);
    }
    model.markers.forEach((m, k) => drawMarker(m.startNs, m.label, -1 - k));
    return { points: count, markers: this._mx.length, ms: performance.now() - t0 };
  }

  /** Draw every mark again at the next render (a benchmark's full redraw). */
  invalidate(): void {
    this._key = '';
  }

  /** What is under the pointer at CSS (x, y) of the canvas: the nearest mark within 8 px, or a marker. */
  hit(x: number, y: number): Hit | null {
    if (y < MARGIN.top) {
      let best = -1;
      let bestD = 5;
      for (let k = 0; k < this._mx.length; k++) {
        const d = Math.abs(this._mx[k] - x);
        if (d < bestD) {
          bestD = d;
          best = k;
        }
      }
      if (best < 0) {
        return null;
      }
      const id = this._mi[best];
      return id >= 0 ? { index: id, x: this._mx[best], y } : { marker: -1 - id, x: this._mx[best], y };
    }
    let best = -1;
    let bestD = 64;
    for (let k = this._count - 1; k >= 0; k--) {
      const dx = this._px[k] - x;
      const dy = this._py[k] - y;
      const d = dx * dx + dy * dy;
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    return best < 0 ? null : { index: this._pi[best], x: this._px[best], y: this._py[best] };
  }

  /** The k-th drawn mark (CSS pixels on the canvas), or null: what a test hovers over. */
  mark(k: number): { x: number; y: number; index: number } | null {
    if (k < 0 || k >= this._count) {
      return null;
    }
    return { x: this._px[k], y: this._py[k], index: this._pi[k] };
  }

  get marks(): number {
    return this._count;
  }
}

/** `raw` rounded up to 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten (at most a third more). */
function roomyCeil(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const f of [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (f * p >= raw) {
      return f * p;
    }
  }
  return 10 * p;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}
