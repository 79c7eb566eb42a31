/**
 * The embedded offline model as the front end sees it: what to tell a person about its state (pure
 * functions), and LocalModelWatcher, which polls `GET /api/agent/health` until the model is ready.
 * No React.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { Health, LocalModelState, LocalModelStatus } from './protocol';
import { backoffDelay } from './sequencer';

/** How the server names the embedded model in `model` and the model list (`local/<name>`). */
const LOCAL_PREFIX = 'local/';

/** The text of the model picker's option for `model`. */
export function modelLabel(model: string): string {
  return model.startsWith(LOCAL_PREFIX) ? `offline: ${model.slice(LOCAL_PREFIX.length)}` : model;
}

/** What the chat panel says about a local model that is not ready. */
export interface LocalModelNotice {
  state: LocalModelState;
  /** One line: what is going on. */
  title: string;
  /** The server's explanation (it names the fix), or ''. */
  detail: string;
  /** The install command found in `detail`, to show as code; null when there is none. */
  command: string | null;
  /** What the person can do next, or ''. */
  hint: string;
}

type NotReady = Exclude<LocalModelState, 'ready'>;

const NOTICE_TITLE: Record<NotReady, (name: string) => string> = {
  starting: name => `Starting the offline model (${name})… your first message will wait for it`,
  not_installed: name => `The offline model (${name}) is not installed`,
  failed: name => `The offline model (${name}) could not start`,
  stopped: name => `The offline model (${name}) is not running`
};

const HOSTED_MODEL_HINT = 'Or configure a hosted model: c.JupyterAgent.model (or JUPYTER_AGENT_MODEL).';

const NOTICE_HINT: Record<NotReady, (command: string | null) => string> = {
  starting: () => '',
  // The server checks what is installed when it starts.
  not_installed: command => `${command ? 'After installing it, restart Jupyter. ' : ''}${HOSTED_MODEL_HINT}`,
  failed: () => 'Your next message tries to start it again. The Jupyter server log has the details.',
  stopped: () => 'Your next message starts it.'
};

/** The notice for `status`, or null when there is nothing to say (no local model, or it is ready). */
export function localModelNotice(status: LocalModelStatus | null | undefined): LocalModelNotice | null {
  if (!status || status.ready || status.state === 'ready') {
    return null;
  }
  const state = status.state;
  const detail = state === 'starting' ? '' : sentence(status.error ?? '');
  const command = status.install_command ?? installCommand(detail);
  // A state this page does not know yet (a newer server) reads like 'stopped'.
  const title = (NOTICE_TITLE[state] ?? NOTICE_TITLE.stopped)(status.name);
  const hint = (NOTICE_HINT[state] ?? NOTICE_HINT.stopped)(command);
  return { state, title, detail, command, hint };
}

const STATUS_LABEL: Record<LocalModelState, string> = {
  starting: 'offline model starting',
  ready: '',
  failed: 'offline model failed',
  not_installed: 'offline model not installed',
  stopped: 'offline model stopped'
};

/** A few words for the status bar, or '' when the local model is absent or ready. */
export function localModelStatusLabel(status: LocalModelStatus | null | undefined): string {
  return !status || status.ready ? '' : STATUS_LABEL[status.state] ?? `offline model ${status.state}`;
}

/**
 * The `pip install ...` command in a server message, e.g. "Install them with pip install 'jupyter-agent[local]'"
 * or "... (it compiles ...)": the words after "pip install" up to an opening parenthesis or the end.
 */
export function installCommand(text: string): string | null {
  const found = /pip install(?: [^\s(]+)+/.exec(text);
  return found ? found[0].replace(/[.,;:]+$/, '') : null;
}

function sentence(text: string): string {
  const trimmed = text.trim();
  return trimmed ? trimmed[0].toUpperCase() + trimmed.slice(1) : '';
}

/**
 * Milliseconds before the `attempt`-th poll (0-based) that found the same state: 1-2 s at first, doubling,
 * up to 10 s while the model starts and 60 s when only a person can change the state (install, restart).
 */
export function pollDelay(attempt: number, state: LocalModelState, random: () => number = Math.random): number {
  const maxMs = state === 'starting' ? 10_000 : 60_000;
  return backoffDelay(attempt, { baseMs: 2000, maxMs, random });
}

export interface ILocalModelWatcherOptions {
  /** `GET /api/agent/health` (the client's, so it also tells whether the server is reachable). */
  fetchHealth: () => Promise<Health>;
  /** Milliseconds before a poll; `pollDelay` unless given. */
  delay?: (attempt: number, state: LocalModelState) => number;
}

/**
 * The local model's latest status. Feed it health answers with `update`; while the model is there and not
 * ready it polls health by itself, backing off while nothing changes, and stops once the model is ready, the
 * server runs none, or it is disposed.
 */
export class LocalModelWatcher implements IDisposable {
  constructor(options: ILocalModelWatcherOptions) {
    this._fetchHealth = options.fetchHealth;
    this._delay = options.delay ?? pollDelay;
  }

  /** The status from the last health answer; null when the server runs no local model (or none came yet). */
  get status(): LocalModelStatus | null {
    return this._status;
  }
  get changed(): ISignal<this, LocalModelStatus | null> {
    return this._changed;
  }
  /** True while a poll is scheduled. */
  get polling(): boolean {
    return this._timer !== null;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Take the local model's status from a health answer fetched elsewhere. */
  update(health: Health): void {
    this._take(health.local_model ?? null);
  }

  /** Ask now (e.g. a prompt was sent, which restarts a failed model), then poll from the shortest delay. */
  async refresh(): Promise<void> {
    this._attempt = 0;
    await this._poll();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._cancel();
    Signal.clearData(this);
  }

  private async _poll(): Promise<void> {
    this._cancel();
    if (this._disposed) {
      return;
    }
    const ask = ++this._asked;
    let health: Health;
    try {
      health = await this._fetchHealth();
    } catch {
      // The connection state already says when the server cannot be reached: try again later.
      if (ask === this._asked && !this._disposed) {
        this._schedule();
      }
      return;
    }
    if (ask === this._asked) {
      this._take(health.local_model ?? null);
    }
  }

  private _take(status: LocalModelStatus | null): void {
    if (this._disposed) {
      return;
    }
    if (!sameStatus(status, this._status)) {
      this._status = status;
      this._attempt = 0;
      this._changed.emit(status);
    }
    this._schedule();
  }

  private _schedule(): void {
    this._cancel();
    const status = this._status;
    if (this._disposed || !status || status.ready) {
      return;
    }
    this._timer = setTimeout(() => void this._poll(), this._delay(this._attempt++, status.state));
  }

  private _cancel(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private readonly _fetchHealth: () => Promise<Health>;
  private readonly _delay: (attempt: number, state: LocalModelState) => number;
  private _status: LocalModelStatus | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _attempt = 0;
  /** Counts health requests; an answer is used only if no later request was made. */
  private _asked = 0;
  private _disposed = false;
  private _changed = new Signal<this, LocalModelStatus | null>(this);
}

function sameStatus(a: LocalModelStatus | null, b: LocalModelStatus | null): boolean {
  if (a === null || b === null) {
    return a === b;
  }
  return a.name === b.name && a.state === b.state && a.ready === b.ready && a.error === b.error;
}
