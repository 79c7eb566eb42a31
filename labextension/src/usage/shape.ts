/**
 * The Agent Usage panel's data shaping: the server's analytics answer turned into what the charts draw
 * (a column for every day of the period, bars scaled to a rounded axis, a latency histogram from cumulative
 * buckets) and the totals as labelled figures. Pure functions; no React, no DOM.
 */
import { formatCost, formatCount, formatDuration } from '../components/format';
import { Analytics, AnalyticsDay, AnalyticsTool, HistogramBucket } from './protocol';

const DAY_MS = 86_400_000;
/** A longer period is drawn as its last this many days (the totals still cover all of it). */
export const MAX_DAYS = 731;

// -- dates ------------------------------------------------------------------------------------------

/** The UTC date of `time` as YYYY-MM-DD (the server counts days in UTC). */
export function utcDay(time: Date | number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** The UTC date `days` days before (or after, if negative) the date `day`. */
export function shiftDay(day: string, days: number): string {
  return utcDay(Date.parse(`${day}T00:00:00Z`) - days * DAY_MS);
}

/** The quick range of the last `days` days, today (UTC) included. */
export function lastDays(days: number, now: Date | number = Date.now()): { since: string; until: string } {
  const until = utcDay(now);
  return { since: shiftDay(until, days - 1), until };
}

/** Every UTC day the period [since, until) touches (epoch seconds), oldest first; at most MAX_DAYS. */
export function daysOf(since: number, until: number): { days: string[]; truncated: boolean } {
  const first = Math.floor((since * 1000) / DAY_MS);
  const last = Math.ceil((until * 1000) / DAY_MS) - 1;
  if (!isFinite(first) || !isFinite(last) || last < first) {
    return { days: [], truncated: false };
  }
  const start = Math.max(first, last - MAX_DAYS + 1);
  const days: string[] = [];
  for (let n = start; n <= last; n++) {
    days.push(utcDay(n * DAY_MS));
  }
  return { days, truncated: start > first };
}

// -- cost and tokens per day ------------------------------------------------------------------------

export type DailyMetric = 'cost' | 'tokens';

export interface DaySegment {
  user: string;
  value: number;
}

/** One day's bar: its total and one segment per person with a non-zero value, in `users` order. */
export interface DayColumn {
  day: string;
  total: number;
  segments: DaySegment[];
}

export interface DailySeries {
  columns: DayColumn[];
  /** Everyone in the rows, sorted: the stacking order and the legend. */
  users: string[];
  /** The largest day's total. */
  max: number;
  truncated: boolean;
}

/** A person's name in the charts (`user` is null where the server knows nobody, e.g. no identity provider). */
export function userLabel(user: string | null): string {
  return user ?? 'unknown';
}

function metricOf(row: AnalyticsDay, metric: DailyMetric): number {
  return metric === 'cost' ? row.cost || 0 : (row.prompt_tokens || 0) + (row.completion_tokens || 0);
}

/** `metric` per day and person over every day of the answer's period, days without use as zero. */
export function dailySeries(answer: Pick<Analytics, 'since' | 'until' | 'by_day'>, metric: DailyMetric): DailySeries {
  const { days, truncated } = daysOf(answer.since, answer.until);
  const users = [...new Set(answer.by_day.map(r => userLabel(r.user)))].sort();
  const values = new Map<string, Map<string, number>>();
  for (const row of answer.by_day) {
    const perUser = values.get(row.day) ?? new Map<string, number>();
    const user = userLabel(row.user);
    perUser.set(user, (perUser.get(user) ?? 0) + metricOf(row, metric));
    values.set(row.day, perUser);
  }
  const columns = days.map(day => {
    const perUser = values.get(day);
    const segments = users.map(user => ({ user, value: perUser?.get(user) ?? 0 })).filter(s => s.value > 0);
    return { day, total: segments.reduce((sum, s) => sum + s.value, 0), segments };
  });
  return { columns, users, max: Math.max(0, ...columns.map(c => c.total)), truncated };
}

// -- axes and bars ----------------------------------------------------------------------------------

/** The smallest 1, 2 or 5 × 10^k at or above `max`: a round top for an axis (1 when there is nothing). */
export function niceCeiling(max: number): number {
  if (!(max > 0) || !isFinite(max)) {
    return 1;
  }
  const power = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 5, 10]) {
    // The tolerance keeps 0.3 (= 0.30000000000000004 after arithmetic) from rounding up to 0.5.
    if (step * power >= max * (1 - 1e-9)) {
      return step * power;
    }
  }
  return 10 * power;
}

/** The length of a bar of `value` on an axis from 0 to `axisMax` drawn `length` long. */
export function scaled(value: number, axisMax: number, length: number): number {
  if (!(axisMax > 0) || !(value > 0)) {
    return 0;
  }
  return (Math.min(value, axisMax) / axisMax) * length;
}

// -- tools ------------------------------------------------------------------------------------------

export interface ToolBar {
  tool: string;
  calls: number;
  errors: number;
  /** Shares of the longest bar (the most used tool): the calls that went well, then the failed ones. */
  okFraction: number;
  errorFraction: number;
}

/** The `limit` most used tools as bars relative to the most used one (the server sorts by calls). */
export function toolBars(tools: readonly AnalyticsTool[], limit = 12): ToolBar[] {
  const shown = [...tools].sort((a, b) => b.calls - a.calls || a.tool.localeCompare(b.tool)).slice(0, limit);
  const most = Math.max(0, ...shown.map(t => t.calls));
  return shown.map(t => {
    const errors = Math.min(t.errors, t.calls);
    return {
      tool: t.tool,
      calls: t.calls,
      errors,
      okFraction: most ? (t.calls - errors) / most : 0,
      errorFraction: most ? errors / most : 0
    };
  });
}

// -- turn latency -----------------------------------------------------------------------------------

export interface LatencyBar {
  /** The bucket's upper bound in ms (Infinity for "+Inf"); its lower bound is the previous bar's. */
  le: number;
  label: string;
  /** The turns in this bucket alone (not cumulative). */
  count: number;
}

function bound(le: HistogramBucket['le_ms']): number {
  return le === '+Inf' ? Infinity : Number(le);
}

/** A bucket bound for people: "≤250 ms", "≤2.5 s", "≤5 min". */
export function limitLabel(ms: number): string {
  if (ms < 1000) {
    return `≤${ms} ms`;
  }
  if (ms < 60_000) {
    return `≤${+(ms / 1000).toFixed(1)} s`;
  }
  return `≤${+(ms / 60_000).toFixed(1)} min`;
}

/** Per-bucket counts from Prometheus-style cumulative buckets (the last one "+Inf"). */
export function latencyBars(histogram: readonly HistogramBucket[]): LatencyBar[] {
  const buckets = histogram.map(b => ({ le: bound(b.le_ms), cumulative: b.count })).sort((a, b) => a.le - b.le);
  let previous = 0;
  return buckets.map((b, i) => {
    // max(): a count that went down would be a server bug; never draw a negative bar.
    const count = Math.max(0, b.cumulative - previous);
    previous = Math.max(previous, b.cumulative);
    const label = isFinite(b.le) ? limitLabel(b.le) : i ? `>${limitLabel(buckets[i - 1].le).slice(1)}` : 'all';
    return { le: b.le, label, count };
  });
}

/**
 * Where a duration falls across the histogram, as a share of its width (0: left edge, 1: right edge):
 * within its bucket, linearly between the bucket's bounds (the middle of the open-ended last one).
 * Null when there is no duration or no bucket.
 */
export function markerPosition(ms: number | null, bars: readonly LatencyBar[]): number | null {
  if (ms === null || !isFinite(ms) || !bars.length) {
    return null;
  }
  let lower = 0;
  for (let i = 0; i < bars.length; i++) {
    const upper = bars[i].le;
    if (ms <= upper) {
      const within = isFinite(upper) && upper > lower ? (Math.max(ms, lower) - lower) / (upper - lower) : 0.5;
      return (i + within) / bars.length;
    }
    lower = upper;
  }
  return 1;
}

// -- totals -----------------------------------------------------------------------------------------

export interface Figure {
  /** Stable key, also the element's `data-metric`. */
  key: string;
  label: string;
  value: string;
  detail: string;
}

/** A rate (0..1) as a percentage; "–" when there was nothing to count. */
export function formatRate(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !isFinite(rate)) {
    return '–';
  }
  const percent = rate * 100;
  return `${percent > 0 && percent < 10 ? percent.toFixed(1) : Math.round(percent)}%`;
}

/** The cost as far as it is known: "cost unknown" when no price was, "≥ $x" when some were missing. */
export function costText(cost: number, known: boolean): string {
  if (known) {
    return cost === 0 ? '$0.00' : formatCost(cost);
  }
  return cost > 0 ? `≥ ${formatCost(cost)}` : 'cost unknown';
}

/** The totals row: turns, sessions, tokens, cost, tool calls, error, approval and refusal rates, turns per session. */
export function figures(answer: Analytics): Figure[] {
  const t = answer.totals;
  const tps = answer.turns_per_session;
  const a = answer.approvals;
  return [
    { key: 'turns', label: 'Turns', value: formatCount(t.turns), detail: `${formatCount(t.turns_failed)} failed` },
    { key: 'sessions', label: 'Sessions', value: formatCount(t.sessions), detail: '' },
    {
      key: 'tokens',
      label: 'Tokens',
      value: formatCount(t.prompt_tokens + t.completion_tokens),
      detail: `${formatCount(t.prompt_tokens)} in · ${formatCount(t.completion_tokens)} out`
    },
    {
      key: 'cost',
      label: 'Cost',
      value: costText(t.cost, t.cost_known),
      detail: t.cost_known ? '' : 'a model without a known price was used'
    },
    {
      key: 'tool_calls',
      label: 'Tool calls',
      value: formatCount(t.tool_calls),
      detail: `${formatCount(t.tool_errors)} failed`
    },
    {
      key: 'error_rate',
      label: 'Tool error rate',
      value: formatRate(t.tool_calls ? t.tool_errors / t.tool_calls : null),
      detail: ''
    },
    {
      key: 'approval_rate',
      label: 'Approval rate',
      value: formatRate(a.approval_rate),
      detail: a.requested ? `${formatCount(a.approved)} of ${formatCount(a.requested)} approved` : 'none asked'
    },
    {
      key: 'refusal_rate',
      label: 'Refusal rate',
      value: formatRate(answer.refusals.rate),
      detail: `${formatCount(answer.refusals.count)} refused`
    },
    {
      key: 'turns_per_session',
      label: 'Turns per session',
      value: tps.mean === null ? '–' : `${+tps.mean.toFixed(1)}`,
      detail: tps.max === null ? '' : `median ${tps.p50 ?? '–'} · max ${tps.max}`
    }
  ];
}

/** An axis label in dollars: "$0", "$0.005", "$2.5". */
export function axisCost(usd: number): string {
  return usd === 0 ? '$0' : `$${+usd.toPrecision(3)}`;
}

/** An axis label of a count: whole numbers grouped, fractions (of an axis topped at 1) as decimals. */
export function axisCount(n: number): string {
  return Number.isInteger(n) ? formatCount(n) : String(+n.toFixed(2));
}

/** Milliseconds for the tables and captions ("–" when unknown). */
export function msText(ms: number | null): string {
  return ms === null ? '–' : formatDuration(ms);
}
