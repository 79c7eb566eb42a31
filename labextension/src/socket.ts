/**
 * A WebSocket that connects again, with backoff, whenever it drops, until disposed.
 * Frames go out as JSON and come in parsed; a frame that is not JSON is dropped.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { backoffDelay } from './sequencer';

export interface IReconnectingSocketOptions {
  /** Where to connect; asked before every attempt (the address may carry where to resume from). */
  url: () => string;
  /** The WebSocket class to use (JupyterLab's server settings carry one). */
  WebSocket: typeof WebSocket;
  /** Milliseconds to wait before reconnect attempt `attempt` (0-based); `backoffDelay` unless given. */
  delay?: (attempt: number) => number;
}

export class ReconnectingSocket implements IDisposable {
  /** Connects at once. */
  constructor(private readonly _options: IReconnectingSocketOptions) {
    this._open();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The connection is open (again). */
  get opened(): ISignal<this, void> {
    return this._opened;
  }
  /** A frame arrived, parsed from JSON. */
  get received(): ISignal<this, unknown> {
    return this._received;
  }
  /**
   * The connection dropped (or could not be made) and another attempt is scheduled; with how many
   * attempts in a row had failed before this drop.
   */
  get dropped(): ISignal<this, number> {
    return this._dropped;
  }

  /** Send a frame; false when the connection is not open (nothing is queued). */
  send(frame: unknown): boolean {
    const ws = this._ws;
    if (!ws || ws.readyState !== this._options.WebSocket.OPEN) {
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Drop the connection and connect again now, as if for the first time. */
  reconnect(): void {
    this._close();
    this._attempts = 0;
    this._open();
  }

  /** Drop the connection as if the network had, e.g. when it stopped answering: reconnect after backoff. */
  drop(): void {
    this._close();
    this._scheduleReconnect();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._close();
    Signal.clearData(this);
  }

  private _open(): void {
    if (this._disposed) {
      return;
    }
    const ws = new this._options.WebSocket(this._options.url());
    this._ws = ws;
    ws.onopen = () => {
      this._attempts = 0;
      this._opened.emit();
    };
    ws.onmessage = msg => {
      let frame: unknown;
      try {
        frame = JSON.parse(String(msg.data));
      } catch {
        return; // not ours to interpret
      }
      this._received.emit(frame);
    };
    ws.onclose = () => {
      if (this._ws === ws) {
        this._ws = null;
        this._scheduleReconnect();
      }
    };
  }

  private _scheduleReconnect(): void {
    if (this._disposed || this._timer !== null) {
      return;
    }
    const attempt = this._attempts++;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._open();
    }, (this._options.delay ?? backoffDelay)(attempt));
    this._dropped.emit(attempt);
  }

  /** Close the socket without a reconnect, and cancel one that is scheduled. */
  private _close(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
    }
  }

  private _ws: WebSocket | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  /** Attempts in a row that failed since the connection was last open. */
  private _attempts = 0;
  private _disposed = false;
  private _opened = new Signal<this, void>(this);
  private _received = new Signal<this, unknown>(this);
  private _dropped = new Signal<this, number>(this);
}
