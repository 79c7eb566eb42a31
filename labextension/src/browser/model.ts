/**
 * BrowserViewModel: the browser panel's state for one chat session at a time, and
 * its socket to the server (reconnecting with backoff). No React.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_ROOT } from '../api';
import { SessionPanelModel } from '../panelModel';
import { UserInfo } from '../protocol';
import { ReconnectingSocket } from '../socket';
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

export class BrowserViewModel extends SessionPanelModel<BrowserViewState> {
  constructor(private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    super({ ...EMPTY, sessionId: null, connection: 'idle' });
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

  /** Watch another session (null: none). Leaving a session hands back control of its browser. */
  protected follow(sessionId: string | null): void {
    this._closeSocket();
    this.update({ ...EMPTY, sessionId, connection: sessionId ? 'connecting' : 'idle' });
    if (sessionId) {
      this._open(sessionId);
    }
  }

  protected onDispose(): void {
    this._closeSocket();
  }

  private _send(frame: BrowserClientFrame): boolean {
    if (!this._socket?.send(frame)) {
      this.update({ error: 'Not connected to the browser view; try again in a moment.' });
      return false;
    }
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
    const socket = new ReconnectingSocket({ url: () => this._socketUrl(sessionId), WebSocket: this._settings.WebSocket });
    socket.opened.connect(() => this.update({ connection: 'connected' }));
    socket.received.connect((_, frame) => this._onFrame(frame as BrowserServerFrame));
    // Control ends with the connection (the server hands it back).
    socket.dropped.connect(() => this.update({ connection: 'reconnecting', inControl: false }));
    this._socket = socket;
  }

  private _onFrame(frame: BrowserServerFrame): void {
    switch (frame.type) {
      case 'frame':
        this.update({
          frame: { src: `data:image/jpeg;base64,${frame.data}`, width: frame.width, height: frame.height, seq: frame.seq },
          url: frame.url,
          title: frame.title,
          active: true
        });
        break;
      case 'state':
        this.update({
          active: frame.active,
          url: frame.url,
          title: frame.title,
          controlledBy: frame.controlled_by,
          inControl: frame.in_control,
          agentWaiting: frame.agent_waiting,
          frame: frame.active ? this.state.frame : null
        });
        break;
      case 'error':
        this.update({ error: frame.message });
        break;
    }
  }

  private _closeSocket(): void {
    this._socket?.dispose();
    this._socket = null;
  }

  private _socket: ReconnectingSocket | null = null;
  private _wheel: { dx: number; dy: number; x?: number; y?: number } | null = null;
}
