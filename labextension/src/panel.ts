/**
 * The "wasi-nn timeline" side panel: a toolbar (filters by graph, guest and operation; pause, clear, export CSV;
 * a legend), the plot, and the hover details. It shows the feed of the active notebook's kernel.
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { download, toCsv } from './csv';
import { Dictionary, IFilter } from './model';
import { ERROR_COLOR, formatNs, opColor, TimelinePlot } from './plot';
import { KernelFeed } from './tracker';

export const timelineIcon = new LabIcon({
  name: 'wasinn-jupyter:timeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="20" width="20" height="2"/><rect x="2" y="2" width="2" height="18"/>' +
    '<circle cx="8" cy="14" r="2"/><circle cx="12" cy="9" r="2"/><circle cx="16" cy="12" r="2"/>' +
    '<circle cx="20" cy="5" r="2"/></g></svg>'
});

const ALL = '';

export class TimelinePanel extends Widget {
  readonly plot = new TimelinePlot();
  private _feed: KernelFeed | null = null;
  private _filter: IFilter = { graph: null, guest: null, op: null };
  private _paused = false;
  private _frame = 0;
  private _pausedAt = 0;
  private _marks = 0;
  private _selects: Record<keyof IFilter, HTMLSelectElement>;
  private _pause: HTMLButtonElement;
  private _info: HTMLElement;
  private _legend: HTMLElement;
  private _tip: HTMLElement;
  private _resize: ResizeObserver;
  /** Renders so far and the last one's figures (the browser tests and the benchmark read these). */
  renders = 0;
  lastRenderMs = 0;

  constructor() {
    super();
    this.id = 'wasinn-timeline';
    this.addClass('wasinn-timeline');
    this.title.icon = timelineIcon;
    this.title.caption = 'wasi-nn timeline';
    this.title.label = '';
    const bar = document.createElement('div');
    bar.className = 'wasinn-timeline-toolbar';
    const select = (name: keyof IFilter, label: string) => {
      const el = document.createElement('select');
      el.className = `wasinn-timeline-filter wasinn-timeline-filter-${name}`;
      el.title = `Show only this ${label}`;
      el.setAttribute('aria-label', `${label} filter`);
      el.onchange = () => {
        this._filter = { ...this._filter, [name]: el.value === ALL ? null : el.value };
        this.schedule();
      };
      bar.appendChild(el);
      return el;
    };
    this._selects = { graph: select('graph', 'graph'), guest: select('guest', 'guest'), op: select('op', 'operation') };
    const button = (label: string, cls: string, onclick: () => void) => {
      const b = document.createElement('button');
      b.className = `jp-mod-styled wasinn-timeline-${cls}`;
      b.textContent = label;
      b.onclick = onclick;
      bar.appendChild(b);
      return b;
    };
    this._pause = button('Pause', 'pause', () => this.setPaused(!this._paused));
    button('Clear', 'clear', () => this._feed?.model.clear());
    button('Export CSV', 'export', () => this.exportCsv());
    this._info = document.createElement('span');
    this._info.className = 'wasinn-timeline-info';
    bar.appendChild(this._info);
    this._legend = document.createElement('div');
    this._legend.className = 'wasinn-timeline-legend';
    const body = document.createElement('div');
    body.className = 'wasinn-timeline-body';
    body.appendChild(this.plot.canvas);
    this._tip = document.createElement('div');
    this._tip.className = 'wasinn-timeline-tooltip';
    this._tip.hidden = true;
    body.appendChild(this._tip);
    this.node.append(bar, this._legend, body);
    this.plot.canvas.addEventListener('mousemove', e => this._hover(e));
    this.plot.canvas.addEventListener('mouseleave', () => (this._tip.hidden = true));
    this._resize = new ResizeObserver(() => this.schedule());
    this._resize.observe(body);
  }

  get feed(): KernelFeed | null {
    return this._feed;
  }

  get paused(): boolean {
    return this._paused;
  }

  /** Show `feed` (the active notebook's), or nothing. */
  setFeed(feed: KernelFeed | null): void {
    if (feed === this._feed) {
      return;
    }
    this._feed?.model.changed.disconnect(this._onChanged, this);
    this._feed = feed;
    this._filter = { graph: null, guest: null, op: null };
    for (const el of Object.values(this._selects)) {
      el.replaceChildren(); // refilled for this feed by the next render
    }
    this._legend.replaceChildren();
    feed?.model.changed.connect(this._onChanged, this);
    if (feed && this.isVisible) {
      feed.subscribe();
    }
    this.render();
  }

  setPaused(paused: boolean): void {
    this._paused = paused;
    this._pausedAt = this._feed?.model.size ?? 0;
    this._pause.textContent = paused ? 'Resume' : 'Pause';
    this._pause.classList.toggle('jp-mod-accept', paused);
    this.node.dataset.paused = String(paused);
    if (paused) {
      this._showInfo();
    } else {
      this._pausedAt = 0;
      this.schedule();
    }
  }

  exportCsv(): void {
    const model = this._feed?.model;
    if (!model) {
      return;
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    download(toCsv(model, model.visible(this._filter)), `wasinn-timeline-${stamp}.csv`);
  }

  /** Redraw at the next animation frame (many batches in one frame draw once). */
  schedule(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this.render();
      });
    }
  }

  render(): void {
    const model = this._feed?.model;
    if (!this.isVisible) {
      return;
    }
    this._syncControls();
    if (!model) {
      this.plot.canvas.getContext('2d')?.clearRect(0, 0, this.plot.canvas.width, this.plot.canvas.height);
      this._info.textContent = 'No notebook';
      return;
    }
    const stats = this.plot.render(model, this._filter);
    this.renders++;
    this.lastRenderMs = stats.ms;
    const calls = stats.points;
    this._marks = calls;
    this._showInfo();
    const d = this.node.dataset;
    d.marks = String(calls);
    d.markers = String(stats.markers);
    d.records = String(model.size);
    d.renderMs = stats.ms.toFixed(2);
    d.renders = String(this.renders);
  }

  protected onAfterShow(msg: Message): void {
    this._feed?.subscribe();
    this.render();
  }

  protected onBeforeHide(msg: Message): void {
    this._tip.hidden = true;
  }

  dispose(): void {
    this._resize.disconnect();
    this.setFeed(null);
    super.dispose();
  }

  private _onChanged(): void {
    if (this._paused) {
      this._showInfo(); // the count of what waits, not a redraw
    } else {
      this.schedule();
    }
  }

  private _showInfo(): void {
    const model = this._feed?.model;
    if (!model) {
      return;
    }
    const waiting = this._paused ? ` · paused (+${model.size - this._pausedAt})` : '';
    const lost = model.dropped ? ` · ${model.dropped} not received` : '';
    const state = this._feed?.connected ? '' : ' · kernel not sending (%load_ext wasinn_jupyter)';
    this._info.textContent = `${this._marks} calls shown of ${this._paused ? this._pausedAt : model.size} records${waiting}${lost}${state}`;
  }

  private _syncControls(): void {
    const model = this._feed?.model;
    const fill = (el: HTMLSelectElement, dict: Dictionary | undefined, label: string, chosen: string | null) => {
      const values = dict ? dict.values.filter(v => v !== '') : [];
      if (el.options.length === values.length + 1) {
        return;
      }
      el.replaceChildren(new Option(`all ${label}`, ALL), ...values.map(v => new Option(v, v, false, v === chosen)));
      el.value = chosen ?? ALL;
    };
    fill(this._selects.graph, model?.graphs, 'graphs', this._filter.graph);
    fill(this._selects.guest, model?.guests, 'guests', this._filter.guest);
    fill(this._selects.op, model?.ops, 'operations', this._filter.op);
    if (!model) {
      this._legend.replaceChildren();
      return;
    }
    const calls = model.callOps;
    if (this._legend.childElementCount !== calls.size + 1) {
      const item = (color: string, label: string) => {
        const span = document.createElement('span');
        span.className = 'wasinn-timeline-legend-item';
        const swatch = document.createElement('i');
        swatch.style.background = color;
        span.append(swatch, label);
        return span;
      };
      this._legend.replaceChildren(
        ...[...calls].sort((a, b) => a - b).map(c => item(opColor(c), model.ops.values[c])),
        item(ERROR_COLOR, 'failed')
      );
    }
  }

  private _hover(e: MouseEvent): void {
    const model = this._feed?.model;
    const rect = this.plot.canvas.getBoundingClientRect();
    const hit = model ? this.plot.hit(e.clientX - rect.left, e.clientY - rect.top) : null;
    if (!model || !hit) {
      this._tip.hidden = true;
      return;
    }
    const table = document.createElement('table');
    const row = (key: string, value: unknown) => {
      const tr = table.insertRow();
      tr.insertCell().textContent = key;
      tr.insertCell().textContent = show(key, value);
    };
    if ('marker' in hit) {
      const m = model.markers[hit.marker];
      row('marker', m.label);
      row('start_ns', m.startNs);
    } else {
      const rec = model.record(hit.index);
      row(String(rec.call ?? 'record'), `${formatNs(model.duration[hit.index])}`);
      for (const [key, value] of Object.entries(rec)) {
        row(key, value);
      }
    }
    this._tip.replaceChildren(table);
    this._tip.hidden = false;
    const body = this._tip.parentElement!.getBoundingClientRect();
    const left = Math.min(hit.x + 12, body.width - this._tip.offsetWidth - 4);
    const top = hit.y + 12 + this._tip.offsetHeight > body.height ? Math.max(0, hit.y - this._tip.offsetHeight - 8) : hit.y + 12;
    this._tip.style.left = `${Math.max(0, left)}px`;
    this._tip.style.top = `${top}px`;
  }
}

/** A field's value for people: tensors as `name [shape] dtype bytes`, other objects as JSON. */
function show(key: string, value: unknown): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if ((key === 'duration_ns' || key === 'device_ns') && typeof value === 'number') {
    return `${value} (${formatNs(value)})`;
  }
  if (Array.isArray(value) && value.every(v => v && typeof v === 'object' && 'shape' in v)) {
    return value
      .map(v => {
        const t = v as { name?: string; shape?: number[]; dtype?: string; nbytes?: number };
        return `${t.name ?? '?'} [${(t.shape ?? []).join('×')}] ${t.dtype ?? ''} ${t.nbytes ?? ''} B`;
      })
      .join('; ');
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
