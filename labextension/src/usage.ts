/**
 * Per-turn usage arithmetic: sums the `usage` events of a turn and merges the `done` totals.
 */
import { UsageFields } from './protocol';
import { TurnUsage } from './viewModel';

export function addUsage(total: TurnUsage | null, u: UsageFields): TurnUsage {
  const t = total ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0, cost: null, latencyMs: 0, ttftMs: null, calls: 0 };
  const prompt = u.prompt_tokens ?? 0;
  const completion = u.completion_tokens ?? 0;
  return {
    model: u.model || t.model,
    promptTokens: t.promptTokens + prompt,
    completionTokens: t.completionTokens + completion,
    totalTokens: t.totalTokens + (u.total_tokens ?? prompt + completion),
    cost: typeof u.cost === 'number' ? (t.cost ?? 0) + u.cost : t.cost,
    latencyMs: t.latencyMs + (u.latency_ms ?? 0),
    ttftMs: t.ttftMs ?? u.ttft_ms ?? null,
    calls: t.calls + 1
  };
}

/** The `done` event's totals are authoritative; keep what they leave out from the running sum. */
export function mergeTotals(accumulated: TurnUsage | null, totals: UsageFields): TurnUsage {
  const fromTotals = addUsage(null, totals);
  if (!accumulated) {
    return fromTotals;
  }
  return {
    model: totals.model || accumulated.model,
    promptTokens: totals.prompt_tokens ?? accumulated.promptTokens,
    completionTokens: totals.completion_tokens ?? accumulated.completionTokens,
    totalTokens: totals.total_tokens ?? accumulated.totalTokens,
    cost: typeof totals.cost === 'number' ? totals.cost : accumulated.cost,
    latencyMs: totals.latency_ms ?? accumulated.latencyMs,
    ttftMs: totals.ttft_ms ?? accumulated.ttftMs,
    calls: accumulated.calls
  };
}
