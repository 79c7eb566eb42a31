/**
 * AgentClient: the one way the front end talks to the agent server.
 * REST through `api`, and one live connection per open session.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Token } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { AgentApi, AgentApiError } from './api';
import { ConnectionState, SessionConnection } from './connection';
import { AgentEvent, ClientFrame, Health, TransientErrorFrame } from './protocol';

export interface ISessionEvents {
  sessionId: string;
  events: AgentEvent[];
}

export interface ISessionError {
  sessionId: string | null;
  error: TransientErrorFrame;
}

export interface IAgentClient {
  readonly api: AgentApi;
  /** Connection state over all open sessions (the worst one), or of the REST API when none is open. */
  readonly state: ConnectionState;
  /** Last round-trip time in ms, or null when unknown. */
  readonly latency: number | null;
  readonly stateChanged: ISignal<IAgentClient, ConnectionState>;
  readonly latencyChanged: ISignal<IAgentClient, number | null>;
  /** Logged events of every open session, in order and exactly once per session. */
  readonly events: ISignal<IAgentClient, ISessionEvents>;
  /** Errors outside the event log (bad frames, failed gap fills, failed calls). */
  readonly errors: ISignal<IAgentClient, ISessionError>;
  /** Open (or return) the live connection of a session. */
  open(sessionId: string): SessionConnection;
  close(sessionId: string): void;
  /** Send a frame on a session's socket; false when it is not connected. */
  send(sessionId: string, frame: ClientFrame): boolean;
  /** `GET /api/agent/health`, which also tells whether the server is reachable. */
  health(): Promise<Health>;
}

export const IAgentClient = new Token<IAgentClient>(
  'jupyter-agent:IAgentClient',
  'REST and live websocket access to the jupyter-agent server.'
);

export class AgentClient implements IAgentClient, IDisposable {
  constructor(settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    this.api = new AgentApi(settings);
  }

  readonly api: AgentApi;

  get state(): ConnectionState {
    return this._state;
  }
  get latency(): number | null {
    return this._latency;
  }
  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }
  get latencyChanged(): ISignal<this, number | null> {
    return this._latencyChanged;
  }
  get events(): ISignal<this, ISessionEvents> {
    return this._events;
  }
  get errors(): ISignal<this, ISessionError> {
    return this._errors;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  open(sessionId: string): SessionConnection {
    let connection = this._connections.get(sessionId);
    if (connection) {
      return connection;
    }
    connection = new SessionConnection(sessionId, this.api);
    this._connections.set(sessionId, connection);
    connection.events.connect((_, events) => this._events.emit({ sessionId, events }));
    connection.errors.connect((_, error) => this._errors.emit({ sessionId, error }));
    connection.stateChanged.connect(this._updateState, this);
    connection.latencyChanged.connect((_, ms) => this._setLatency(ms));
    this._updateState();
    return connection;
  }

  close(sessionId: string): void {
    const connection = this._connections.get(sessionId);
    if (connection) {
      this._connections.delete(sessionId);
      connection.dispose();
      this._updateState();
    }
  }

  send(sessionId: string, frame: ClientFrame): boolean {
    return this._connections.get(sessionId)?.send(frame) ?? false;
  }

  async health(): Promise<Health> {
    try {
      const health = await this.api.health();
      this._restOk = true;
      return health;
    } catch (error) {
      this._restOk = !(error instanceof AgentApiError && error.code === 'network');
      throw error;
    } finally {
      this._updateState();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    for (const connection of this._connections.values()) {
      connection.dispose();
    }
    this._connections.clear();
    Signal.clearData(this);
  }

  private _updateState(): void {
    const states = [...this._connections.values()].map(c => c.state);
    let state: ConnectionState;
    if (states.length === 0) {
      state = this._restOk ? 'connected' : 'disconnected';
    } else if (states.includes('disconnected')) {
      state = 'disconnected';
    } else {
      state = states.includes('reconnecting') ? 'reconnecting' : 'connected';
    }
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
    if (state !== 'connected') {
      this._setLatency(null);
    }
  }

  private _setLatency(ms: number | null): void {
    if (ms !== this._latency) {
      this._latency = ms;
      this._latencyChanged.emit(ms);
    }
  }

  private _connections = new Map<string, SessionConnection>();
  private _state: ConnectionState = 'reconnecting';
  private _restOk = false;
  private _latency: number | null = null;
  private _disposed = false;
  private _stateChanged = new Signal<this, ConnectionState>(this);
  private _latencyChanged = new Signal<this, number | null>(this);
  private _events = new Signal<this, ISessionEvents>(this);
  private _errors = new Signal<this, ISessionError>(this);
}
