/**
 * BrowserViewModel: the browser panel's state for one chat session at a time, and
 * its socket to the server (reconnecting with backoff). No React.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { API_ROOT } from '../api';
import { UserInfo } from '../protocol';
import { backoffDelay } from '../sequencer';
import { BrowserClientFrame, BrowserInput, BrowserServerFrame } from './protocol';

export type BrowserConnection = 'idle' | 'connecting' | 'connected' | 'reconnecting';

export interface ShownFrame {
  /** A data: URL of the JPEG. */
  src: string;
  width: number;
  height: number;
  seq: number;
}

export interface BrowserViewState {
  sessionId: string | null;
  connection: BrowserConnection;
  active: boolean;
  url: string;
  title: string;
  controlledBy: UserInfo | null;
  inControl: boolean;
  agentWaiting: boolean;
  frame: ShownFrame | null;
  /** The last error the server sent (a refused URL, a failed click...), until dismissed. */
  error: string | null;
}

const EMPTY: Omit<BrowserViewState, 'sessionId' | 'connection'> = {
  active: false,
  url: '',
  title: '',
  controlledBy: null,
  inControl: false,
  agentWaiting: false,
  frame: null,
  error: null
};

export class BrowserViewModel implements IDisposable {
  constructor(private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  get state(): BrowserViewState {
    return this._state;
  }
  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Watch another session (null: none). Leaving a session hands back control of its browser. */
  setSession(sessionId: string | null): void {
    if (sessionId === this._state.sessionId || this._disposed) {
      return;
    }
    this._closeSocket();
    this._attempts = 0;
    this._update({ ...EMPTY, sessionId, connection: sessionId ? 'connecting' : 'idle' });
    if (sessionId) {
      this._open(sessionId);
    }
  }

  takeControl(): boolean {
    return this._send({ type: 'control', take: true });
  }

  handBack(): boolean {
    return this._send({ type: 'control', take: false });
  }

  /** Send input to the page (the server refuses it unless this panel holds control). */
  input(input: BrowserInput): boolean {
    return this._send({ type: 'input', ...input } as BrowserClientFrame);
  }

  /** Wheel scrolling, merged into one input per animation frame. */
  scroll(dx: number, dy: number, x?: number, y?: number): void {
    const pending = this._wheel;
    this._wheel = { dx: (pending?.dx ?? 0) + dx, dy: (pending?.dy ?? 0) + dy, x, y };
    if (!pending) {
      requestAnimationFrame(() => {
        const wheel = this._wheel;
        this._wheel = null;
        if (wheel) {
          this.input({ action: 'scroll', ...wheel });
        }
      });
    }
  }

  dismissError(): void {
    this._update({ error: null });
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._closeSocket();
    Signal.clearData(this);
  }

  private _send(frame: BrowserClientFrame): boolean {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) {
      this._update({ error: 'Not connected to the browser view; try again in a moment.' });
      return false;
    }
    this._ws.send(JSON.stringify(frame));
    return true;
  }

  private _socketUrl(sessionId: string): string {
    const s = this._settings;
    let url = URLExt.join(s.wsUrl, API_ROOT, 'sessions', encodeURIComponent(sessionId), 'browser', 'ws');
    // Same rule as JupyterLab's kernel and terminal sockets.
    if (s.appendToken && s.token !== '') {
      url += `?token=${encodeURIComponent(s.token)}`;
    }
    return url;
  }

  private _open(sessionId: string): void {
    const ws = new this._settings.WebSocket(this._socketUrl(sessionId));
    this._ws = ws;
    ws.onopen = () => {
      this._attempts = 0;
      this._update({ connection: 'connected' });
    };
    ws.onmessage = msg => this._onFrame(msg.data);
    ws.onclose = () => {
      if (this._ws !== ws) {
        return;
      }
      this._ws = null;
      // Control ends with the connection (the server hands it back).
      this._update({ connection: 'reconnecting', inControl: false });
      this._timer = window.setTimeout(() => {
        this._timer = null;
        if (this._state.sessionId === sessionId && !this._disposed) {
          this._open(sessionId);
        }
      }, backoffDelay(this._attempts++));
    };
  }

  private _onFrame(raw: unknown): void {
    let frame: BrowserServerFrame;
    try {
      frame = JSON.parse(String(raw)) as BrowserServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'frame':
        this._update({
          frame: { src: `data:image/jpeg;base64,${frame.data}`, width: frame.width, height: frame.height, seq: frame.seq },
          url: frame.url,
          title: frame.title,
          active: true
        });
        break;
      case 'state':
        this._update({
          active: frame.active,
          url: frame.url,
          title: frame.title,
          controlledBy: frame.controlled_by,
          inControl: frame.in_control,
          agentWaiting: frame.agent_waiting,
          frame: frame.active ? this._state.frame : null
        });
        break;
      case 'error':
        this._update({ error: frame.message });
        break;
    }
  }

  private _closeSocket(): void {
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

  private _update(change: Partial<BrowserViewState>): void {
    this._state = { ...this._state, ...change };
    this._changed.emit();
  }

  private _state: BrowserViewState = { ...EMPTY, sessionId: null, connection: 'idle' };
  private _ws: WebSocket | null = null;
  private _timer: number | null = null;
  private _attempts = 0;
  private _wheel: { dx: number; dy: number; x?: number; y?: number } | null = null;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
