/**
 * Follows one notebook's kernel: registers the comm target on each kernel connection, subscribes (on connect,
 * after a restart, when asked), and feeds what arrives into that notebook's TimelineModel.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import { TimelineModel } from './model';
import { COMM_TARGET, IHello, IRecordsBatch, IReset, KernelMessage as FeedMessage } from './protocol';

export class KernelFeed implements IDisposable {
  readonly model = new TimelineModel();
  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _disposed = false;
  /** Subscribe at the kernel's next idle (once: a kernel without the extension loaded announces itself later). */
  private _subscribeWhenIdle = true;

  constructor(private _session: ISessionContext) {
    _session.kernelChanged.connect(this._onKernelChanged, this);
    void _session.ready.then(() => this._attachKernel(_session.session?.kernel ?? null));
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Whether the kernel's feed answered (a comm is open). */
  get connected(): boolean {
    return this._comm !== null && !this._comm.isDisposed;
  }

  /** Ask the kernel for its timeline (a no-op where the extension is not loaded in it). */
  subscribe(): void {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || this.connected) {
      return;
    }
    try {
      const comm = kernel.createComm(COMM_TARGET);
      this._wire(comm);
      comm.open({ type: 'subscribe' });
    } catch (err) {
      console.debug('wasi-nn timeline: cannot subscribe yet', err);
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._session.kernelChanged.disconnect(this._onKernelChanged, this);
    this._dropComm(true); // the notebook closed, its kernel may live on: it queues again instead of sending
    this._detachKernel();
  }

  private _onKernelChanged(_: ISessionContext, change: { newValue: Kernel.IKernelConnection | null }): void {
    const hadOne = this._kernel !== null;
    this._detachKernel();
    if (hadOne) {
      this.model.newEpoch('new kernel', null);
    }
    this._attachKernel(change.newValue);
  }

  private _attachKernel(kernel: Kernel.IKernelConnection | null): void {
    if (this._disposed || !kernel || kernel === this._kernel) {
      return;
    }
    this._kernel = kernel;
    kernel.registerCommTarget(COMM_TARGET, this._onKernelOpen);
    kernel.statusChanged.connect(this._onStatus, this);
    this._subscribeWhenIdle = true;
    if (kernel.status === 'idle') {
      this._subscribeWhenIdle = false;
      this.subscribe();
    }
  }

  private _detachKernel(): void {
    const kernel = this._kernel;
    if (kernel && !kernel.isDisposed) {
      kernel.removeCommTarget(COMM_TARGET, this._onKernelOpen);
      kernel.statusChanged.disconnect(this._onStatus, this);
    }
    this._kernel = null;
    this._dropComm();
  }

  private _onStatus(_: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this._dropComm();
      this.model.newEpoch('kernel restart', null);
      this._subscribeWhenIdle = true;
    } else if (status === 'idle' && this._subscribeWhenIdle) {
      this._subscribeWhenIdle = false;
      this.subscribe();
    }
  }

  /** The kernel opened the comm (the extension just loaded): answer with subscribe on it. */
  private _onKernelOpen = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    this._dropComm();
    this._wire(comm);
    this._handle(msg.content.data as unknown as FeedMessage, msg.buffers);
    comm.send({ type: 'subscribe' });
  };

  private _wire(comm: Kernel.IComm): void {
    this._dropComm();
    this._comm = comm;
    comm.onMsg = msg => this._handle(msg.content.data as unknown as FeedMessage, msg.buffers);
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
      }
    };
  }

  /** Forget the comm; with `tellKernel`, close it so that the kernel stops sending on it. */
  private _dropComm(tellKernel = false): void {
    const comm = this._comm;
    this._comm = null;
    if (comm && !comm.isDisposed) {
      comm.onMsg = () => undefined;
      comm.onClose = () => undefined;
      if (tellKernel) {
        try {
          comm.close();
        } catch (err) {
          console.debug('wasi-nn timeline: the comm could not be closed', err);
        }
      }
      comm.dispose();
    }
  }

  private _handle(data: FeedMessage, buffers?: (ArrayBuffer | ArrayBufferView)[]): void {
    switch (data.type) {
      case 'hello':
        this.model.hello(data as IHello);
        break;
      case 'records':
        this.model.ingest(data as IRecordsBatch, buffers?.[0], performance.now());
        break;
      case 'reset':
        this.model.reset(data as IReset);
        break;
    }
  }
}
