/**
 * The answer of `GET /api/agent/analytics?since=&until=&user=` (docs/protocol.md, "Usage analytics").
 * Rates and percentiles are null when there is nothing to count.
 */

export interface AnalyticsTotals {
  sessions: number;
  turns: number;
  turns_failed: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** The costs litellm knows; an unknown price counts 0 (then `cost_known` is false). */
  cost: number;
  cost_known: boolean;
  tool_calls: number;
  tool_errors: number;
}

export interface AnalyticsDay {
  /** UTC date, YYYY-MM-DD. */
  day: string;
  user: string | null;
  turns: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
}

export interface AnalyticsTool {
  tool: string;
  calls: number;
  errors: number;
  error_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

/** A cumulative bucket, as Prometheus' `le`: the turns that took at most `le_ms`; the last is "+Inf". */
export interface HistogramBucket {
  le_ms: number | '+Inf';
  count: number;
}

export interface Percentiles {
  p50: number | null;
  p95: number | null;
}

export interface Analytics {
  /** The period, epoch seconds (`until` is the end: the start of the day after a date). */
  since: number;
  until: number;
  user: string | null;
  /** "all": an admin looking at everyone; "self": one person's usage. */
  scope: 'all' | 'self';
  totals: AnalyticsTotals;
  by_day: AnalyticsDay[];
  tools: AnalyticsTool[];
  approvals: { requested: number; approved: number; denied: number; timeout: number; approval_rate: number | null };
  refusals: { count: number; rate: number | null };
  turns_per_session: { mean: number | null; p50: number | null; max: number | null };
  latency: { turn_ms: Percentiles; ttft_ms: Percentiles; histogram: HistogramBucket[] };
}

/** What the panel asks for: UTC dates (both days included) and, for admins, one person (null: everyone). */
export interface AnalyticsQuery {
  since: string;
  until: string;
  user: string | null;
}
