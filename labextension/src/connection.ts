/**
 * The live connection to one session: a websocket that reconnects with backoff,
 * replays from the last seen event, fills gaps over REST and measures latency.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { AgentApi } from './api';
import {
  AccessFrame,
  AgentEvent,
  ClientFrame,
  HelloFrame,
  isLoggedEvent,
  PongFrame,
  TransientErrorFrame
} from './protocol';
import { EventSequencer } from './sequencer';
import { ReconnectingSocket } from './socket';

export type ConnectionState = 'connected' | 'reconnecting' | 'disconnected';

/** After this many failed attempts in a row the connection reports itself offline (it keeps trying). */
const ATTEMPTS_BEFORE_OFFLINE = 5;
const PING_INTERVAL_MS = 5000;
/** Unanswered pings after which the socket is considered dead and replaced. */
const MAX_MISSED_PONGS = 3;

export class SessionConnection implements IDisposable {
  constructor(readonly sessionId: string, private readonly _api: AgentApi, after = 0) {
    this._sequencer = new EventSequencer(after);
    window.addEventListener('online', this._onOnline);
    this._socket = new ReconnectingSocket({
      url: () => this._api.socketUrl(this.sessionId, this.lastSeq),
      WebSocket: this._api.settings.WebSocket
    });
    this._socket.opened.connect(this._onOpen, this);
    this._socket.received.connect((_, frame) => this._onFrame(frame));
    this._socket.dropped.connect(this._onDrop, this);
  }

  get state(): ConnectionState {
    return this._state;
  }
  /** Last measured round-trip time in ms, or null before the first pong. */
  get latency(): number | null {
    return this._latency;
  }
  get lastSeq(): number {
    return this._sequencer.lastSeq;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }
  /** Logged events, in order, each exactly once. */
  get events(): ISignal<this, AgentEvent[]> {
    return this._events;
  }
  get latencyChanged(): ISignal<this, number> {
    return this._latencyChanged;
  }
  /** Errors that are not part of the log (malformed frame, failed gap fill, socket trouble). */
  /** This session became writable here (or read-only): the process that ran it ended. */
  get accessChanged(): ISignal<this, AccessFrame> {
    return this._accessChanged;
  }
  get errors(): ISignal<this, TransientErrorFrame> {
    return this._errors;
  }

  /** Send a frame; false when the socket is not open (nothing is queued). */
  send(frame: ClientFrame): boolean {
    return this._socket.send(frame);
  }

  /** Drop the current socket and connect again now, keeping the position in the log. */
  reconnect(): void {
    this._stopPing();
    this._socket.reconnect();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.removeEventListener('online', this._onOnline);
    this._stopPing();
    this._socket.dispose();
    this._setState('disconnected');
    Signal.clearData(this);
  }

  private _onOpen(): void {
    this._setState('connected');
    this._startPing();
  }

  private _onDrop(_: ReconnectingSocket, failed: number): void {
    this._stopPing();
    this._setState(failed < ATTEMPTS_BEFORE_OFFLINE ? 'reconnecting' : 'disconnected');
  }

  private _onOnline = (): void => {
    if (this._state !== 'connected') {
      this.reconnect();
    }
  };

  private _onFrame(frame: unknown): void {
    if (isLoggedEvent(frame)) {
      this._accept([frame]);
      return;
    }
    const f = frame as HelloFrame | PongFrame | TransientErrorFrame | AccessFrame;
    if (f.type === 'pong') {
      this._onPong(f);
    } else if (f.type === 'error') {
      this._errors.emit(f);
    } else if (f.type === 'access') {
      this._accessChanged.emit(f);
    }
    // `hello` needs nothing: the server replays everything after the `after` we sent.
  }

  private _accept(events: AgentEvent[]): void {
    const { ready, missingAfter } = this._sequencer.pushAll(events);
    if (ready.length) {
      this._events.emit(ready);
    }
    if (missingAfter !== null) {
      void this._fillGap(missingAfter);
    }
  }

  /** Fetch the events the socket skipped; reconnect from the last good seq if that fails. */
  private async _fillGap(after: number): Promise<void> {
    try {
      let from = after;
      for (let page = 0; page < 50 && this._sequencer.hasGap; page++) {
        const { events } = await this._api.events(this.sessionId, from);
        if (this._disposed || events.length === 0) {
          break;
        }
        const { ready } = this._sequencer.pushAll(events);
        if (ready.length) {
          this._events.emit(ready);
        }
        from = events[events.length - 1].seq;
      }
    } catch (error) {
      this._errors.emit({ type: 'error', code: 'network', message: `Could not load missed events: ${String(error)}` });
    }
    if (!this._disposed && this._sequencer.hasGap) {
      // The log does not have them (yet): replay from the server instead.
      this._sequencer.reset(this._sequencer.lastSeq);
      this.reconnect();
    }
  }

  private _startPing(): void {
    this._stopPing();
    this._ping(); // a first measurement right away
    this._pingTimer = window.setInterval(() => {
      if (this._pings.size >= MAX_MISSED_PONGS) {
        this._stopPing();
        this._socket.drop();
        return;
      }
      this._ping();
    }, PING_INTERVAL_MS);
  }

  private _ping(): void {
    const id = ++this._pingId;
    this._pings.set(id, performance.now());
    this.send({ type: 'ping', id });
  }

  private _stopPing(): void {
    if (this._pingTimer !== null) {
      clearInterval(this._pingTimer);
      this._pingTimer = null;
    }
    this._pings.clear();
  }

  private _onPong(frame: PongFrame): void {
    const sent = this._pings.get(frame.id as number);
    if (sent === undefined) {
      return;
    }
    // Older pings answered out of order are not late pongs: forget them too.
    for (const id of this._pings.keys()) {
      if (id <= (frame.id as number)) {
        this._pings.delete(id);
      }
    }
    this._latency = Math.round(performance.now() - sent);
    this._latencyChanged.emit(this._latency);
  }

  private _setState(state: ConnectionState): void {
    if (this._state !== state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _sequencer: EventSequencer;
  private _socket: ReconnectingSocket;
  /** 'reconnecting' also covers the very first connection attempt. */
  private _state: ConnectionState = 'reconnecting';
  private _latency: number | null = null;
  private _pingTimer: number | null = null;
  private _pingId = 0;
  private _pings = new Map<number, number>();
  private _disposed = false;
  private _stateChanged = new Signal<this, ConnectionState>(this);
  private _events = new Signal<this, AgentEvent[]>(this);
  private _latencyChanged = new Signal<this, number>(this);
  private _errors = new Signal<this, TransientErrorFrame>(this);
  private _accessChanged = new Signal<this, AccessFrame>(this);
}

/** Resolve once `state()` is 'connected' or after `timeoutMs`. */
export function waitConnected(changed: ISignal<unknown, ConnectionState>, state: () => ConnectionState, timeoutMs: number): Promise<void> {
  if (state() === 'connected') {
    return Promise.resolve();
  }
  return new Promise(resolve => {
    const done = () => {
      clearTimeout(timer);
      changed.disconnect(onChange);
      resolve();
    };
    const onChange = (_: unknown, s: ConnectionState) => s === 'connected' && done();
    const timer = setTimeout(done, timeoutMs);
    changed.connect(onChange);
  });
}
