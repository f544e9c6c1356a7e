/** The status-bar item: calls per second and the last call's latency, while the active notebook's guests run. */
import { Widget } from '@lumino/widgets';

import { formatNs } from './plot';
import { KernelFeed } from './tracker';

/** Seconds without a new call after which the item hides again. */
const IDLE_MS = 5000;

export class TimelineStatus extends Widget {
  private _feed: KernelFeed | null = null;
  private _timer = 0;

  constructor(private _onClick: () => void) {
    super();
    this.addClass('wasinn-timeline-status');
    this.node.title = 'wasi-nn calls per second and the last call’s latency (click: the timeline)';
    this.node.onclick = () => this._onClick();
    this.node.hidden = true;
  }

  setFeed(feed: KernelFeed | null): void {
    this._feed?.model.changed.disconnect(this._wake, this);
    this._feed = feed;
    feed?.model.changed.connect(this._wake, this);
    this.update();
    this._wake();
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  protected onUpdateRequest(): void {
    const model = this._feed?.model;
    const now = performance.now();
    if (!model || model.lastCall < 0 || now - model.lastArrival > IDLE_MS) {
      this.node.hidden = true;
      this.node.textContent = '';
      window.clearInterval(this._timer);
      this._timer = 0;
      return;
    }
    const rate = model.callsPerSecond(now);
    const last = formatNs(model.duration[model.lastCall]);
    this.node.hidden = false;
    this.node.textContent = `wasi-nn ${Math.round(rate)} calls/s · last ${last}`;
    this.node.dataset.rate = String(Math.round(rate));
  }

  /** Records came: refresh now and every 250 ms until the guests go quiet. */
  private _wake(): void {
    this.update();
    if (!this._timer) {
      this._timer = window.setInterval(() => this.update(), 250);
    }
  }
}
