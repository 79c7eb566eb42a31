/**
 * UsageModel: the Agent Usage panel's state. It asks `GET /api/agent/analytics` for the chosen period and
 * person, again every `POLL_MS` while the panel is shown (the widget calls `start`/`stop`) and at once when the
 * choice changes. The last answer stays on screen until the next one arrives, so a refresh never blanks the
 * charts. No React.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { AgentApi, AgentApiError } from '../api';
import { Analytics, AnalyticsQuery } from './protocol';
import { lastDays } from './shape';

/** How often a shown panel asks again. */
export const POLL_MS = 10_000;
export const QUICK_RANGES = [7, 30, 90] as const;
const DEFAULT_DAYS = 30;

export interface UsageState {
  query: AnalyticsQuery;
  /** The quick range in use (its dates follow the clock), or null for dates picked by hand. */
  quickDays: number | null;
  /** The last answer, and the query it answers (it may lag the current query while a fetch runs). */
  data: Analytics | null;
  dataQuery: AnalyticsQuery | null;
  /** The server's message for the last failed fetch, until one succeeds. */
  error: string | null;
  loading: boolean;
  /** True once the server has shown this person everyone's usage: they may filter by person. */
  admin: boolean;
  /** Everyone seen in answers so far, for the person filter. */
  users: string[];
  /** When the last answer arrived (ms since the epoch). */
  updated: number | null;
}

/** `GET /api/agent/analytics` for `query`. */
export function fetchAnalytics(api: AgentApi, query: AnalyticsQuery): Promise<Analytics> {
  const params = new URLSearchParams({ since: query.since, until: query.until });
  if (query.user) {
    params.set('user', query.user);
  }
  return api.request<Analytics>(`analytics?${params.toString()}`);
}

export class UsageModel implements IDisposable {
  constructor(private readonly _api: AgentApi, private readonly _pollMs = POLL_MS) {
    const range = lastDays(DEFAULT_DAYS);
    this._state = {
      query: { ...range, user: null },
      quickDays: DEFAULT_DAYS,
      data: null,
      dataQuery: null,
      error: null,
      loading: false,
      admin: false,
      users: [],
      updated: null
    };
  }

  get state(): UsageState {
    return this._state;
  }
  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Dates picked by hand (YYYY-MM-DD, UTC, both included). */
  setRange(since: string, until: string): void {
    this._ask({ query: { ...this._state.query, since, until }, quickDays: null });
  }

  /** The last `days` days up to today; the dates move on with the clock while it is chosen. */
  setQuickRange(days: number): void {
    this._ask({ query: { ...this._state.query, ...lastDays(days) }, quickDays: days });
  }

  /** One person's usage (admins), or everyone's (null). */
  setUser(user: string | null): void {
    this._ask({ query: { ...this._state.query, user } });
  }

  /** Fetch now and then every poll interval until `stop`. */
  start(): void {
    this._polling = true;
    void this.refresh();
  }

  stop(): void {
    this._polling = false;
    this._clearTimer();
  }

  /** Ask the server now (a quick range first moves on to today). */
  async refresh(): Promise<void> {
    if (this._disposed) {
      return;
    }
    this._clearTimer();
    const { quickDays } = this._state;
    if (quickDays !== null) {
      const range = lastDays(quickDays);
      if (range.until !== this._state.query.until) {
        this._update({ query: { ...this._state.query, ...range } });
      }
    }
    const query = this._state.query;
    const ticket = ++this._ticket;
    this._update({ loading: true });
    try {
      const data = await fetchAnalytics(this._api, query);
      if (ticket === this._ticket && !this._disposed) {
        this._answered(query, data);
      }
    } catch (error) {
      if (ticket === this._ticket && !this._disposed) {
        this._failed(query, error);
      }
    } finally {
      if (ticket === this._ticket && !this._disposed && this._polling) {
        this._timer = setTimeout(() => void this.refresh(), this._pollMs);
      }
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._clearTimer();
    Signal.clearData(this);
  }

  private _ask(change: Partial<UsageState>): void {
    this._update(change);
    if (this._polling) {
      void this.refresh();
    }
  }

  private _answered(query: AnalyticsQuery, data: Analytics): void {
    const admin = this._state.admin || data.scope === 'all';
    const seen = data.by_day.map(d => d.user).filter((u): u is string => !!u);
    const users = [...new Set([...this._state.users, ...seen, ...(data.user ? [data.user] : [])])].sort();
    // An unchanged answer to the same question changes nothing on screen: skip the re-render.
    const previous = this._state.dataQuery;
    const same = previous !== null && sameQuery(previous, query) && JSON.stringify(this._state.data) === JSON.stringify(data);
    this._update({
      data: same ? this._state.data : data,
      dataQuery: query,
      error: null,
      loading: false,
      admin,
      users,
      updated: Date.now()
    });
  }

  private _failed(query: AnalyticsQuery, error: unknown): void {
    const message = error instanceof AgentApiError ? error.message : `Could not load the usage: ${String(error)}`;
    // A failed poll of the same question keeps its last answer; a refused new question does not show the old one.
    const keep = this._state.dataQuery !== null && sameQuery(this._state.dataQuery, query);
    this._update({
      error: message,
      loading: false,
      data: keep ? this._state.data : null,
      dataQuery: keep ? this._state.dataQuery : null
    });
  }

  private _update(change: Partial<UsageState>): void {
    this._state = { ...this._state, ...change };
    this._changed.emit();
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _state: UsageState;
  private _changed = new Signal<this, void>(this);
  private _disposed = false;
  private _polling = false;
  private _timer: number | null = null;
  /** Numbers the fetches: only the latest one's answer is shown. */
  private _ticket = 0;
}

function sameQuery(a: AnalyticsQuery, b: AnalyticsQuery): boolean {
  return a.since === b.since && a.until === b.until && a.user === b.user;
}
