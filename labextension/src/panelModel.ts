/**
 * The base of a side panel's model (the browser view, the planner): state about the chat session the
 * panel follows, a `changed` signal, and the last error until dismissed. No React.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

export interface ISessionPanelState {
  sessionId: string | null;
  error: string | null;
}

export abstract class SessionPanelModel<S extends ISessionPanelState> implements IDisposable {
  constructor(initial: S) {
    this._state = initial;
  }

  get state(): S {
    return this._state;
  }
  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Follow another session (null: none). */
  setSession(sessionId: string | null): void {
    if (sessionId !== this._state.sessionId && !this._disposed) {
      this.follow(sessionId);
    }
  }

  dismissError(): void {
    this.update({ error: null } as Partial<S>);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.onDispose();
    Signal.clearData(this);
  }

  /** Start following `sessionId`, a session other than the current one. */
  protected abstract follow(sessionId: string | null): void;

  /** Let go of what the model holds; called once, by `dispose`. */
  protected onDispose(): void {
    // Nothing by default.
  }

  protected update(change: Partial<S>): void {
    this._state = { ...this._state, ...change };
    this._changed.emit();
  }

  private _state: S;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
