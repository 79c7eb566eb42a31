/** The Agent Usage panel's pure parts (days, bars, histogram, totals) and its model's fetching rules. */
import { AgentApi, AgentApiError } from '../api';
import { UsageModel } from '../usage/model';
import { Analytics, HistogramBucket } from '../usage/protocol';
import {
  axisCost,
  axisCount,
  costText,
  dailySeries,
  daysOf,
  figures,
  formatRate,
  lastDays,
  latencyBars,
  markerPosition,
  MAX_DAYS,
  niceCeiling,
  scaled,
  toolBars
} from '../usage/shape';

const DAY = 86_400;
const at = (day: string) => Date.parse(`${day}T00:00:00Z`) / 1000;

function answer(fields: Partial<Analytics> = {}): Analytics {
  return {
    since: at('2026-12-05'),
    until: at('2026-12-08'),
    user: null,
    scope: 'all',
    totals: {
      sessions: 0,
      turns: 0,
      turns_failed: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      cost: 0,
      cost_known: true,
      tool_calls: 0,
      tool_errors: 0
    },
    by_day: [],
    tools: [],
    approvals: { requested: 0, approved: 0, denied: 0, timeout: 0, approval_rate: null },
    refusals: { count: 0, rate: null },
    turns_per_session: { mean: null, p50: null, max: null },
    latency: { turn_ms: { p50: null, p95: null }, ttft_ms: { p50: null, p95: null }, histogram: [] },
    ...fields
  };
}

const BUCKETS = [100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000];

function cumulative(durations: number[]): HistogramBucket[] {
  return [
    ...BUCKETS.map(le => ({ le_ms: le, count: durations.filter(d => d <= le).length })),
    { le_ms: '+Inf' as const, count: durations.length }
  ];
}

describe('days of the period', () => {
  it('lists every UTC day from since to until, both included for whole days', () => {
    expect(daysOf(at('2026-12-05'), at('2026-12-08')).days).toEqual(['2026-12-05', '2026-12-06', '2026-12-07']);
  });

  it('includes the day of a period that ends mid-day (the default "up to now")', () => {
    const until = at('2026-12-08') + 3600;
    expect(daysOf(until - 2 * DAY, until).days).toEqual(['2026-12-06', '2026-12-07', '2026-12-08']);
  });

  it('keeps the last MAX_DAYS days of a very long period and says so', () => {
    const { days, truncated } = daysOf(0, at('2026-12-08'));
    expect(days).toHaveLength(MAX_DAYS);
    expect(days[days.length - 1]).toBe('2026-12-07');
    expect(truncated).toBe(true);
  });

  it('gives the quick ranges ending today', () => {
    expect(lastDays(7, Date.parse('2026-12-07T23:00:00Z'))).toEqual({ since: '2026-12-01', until: '2026-12-07' });
    expect(lastDays(1, Date.parse('2026-12-07T01:00:00Z'))).toEqual({ since: '2026-12-07', until: '2026-12-07' });
  });
});

describe('cost and tokens per day', () => {
  const rows = answer({
    by_day: [
      { day: '2026-12-05', user: 'bob', turns: 1, prompt_tokens: 100, completion_tokens: 20, cost: 0.5 },
      { day: '2026-12-07', user: 'alice', turns: 2, prompt_tokens: 300, completion_tokens: 40, cost: 0.25 },
      { day: '2026-12-07', user: 'bob', turns: 1, prompt_tokens: 10, completion_tokens: 5, cost: 0 }
    ]
  });

  it('fills the days without use with zeros and stacks people in name order', () => {
    const tokens = dailySeries(rows, 'tokens');
    expect(tokens.users).toEqual(['alice', 'bob']);
    expect(tokens.columns.map(c => [c.day, c.total])).toEqual([
      ['2026-12-05', 120],
      ['2026-12-06', 0],
      ['2026-12-07', 355]
    ]);
    expect(tokens.columns[2].segments).toEqual([
      { user: 'alice', value: 340 },
      { user: 'bob', value: 15 }
    ]);
    expect(tokens.columns[1].segments).toEqual([]);
    expect(tokens.max).toBe(355);
  });

  it('draws cost without the zero-cost segments', () => {
    const cost = dailySeries(rows, 'cost');
    expect(cost.columns[2].segments).toEqual([{ user: 'alice', value: 0.25 }]);
    expect(cost.max).toBe(0.5);
  });

  it('names rows without a person "unknown"', () => {
    const series = dailySeries(
      answer({ by_day: [{ day: '2026-12-06', user: null, turns: 1, prompt_tokens: 1, completion_tokens: 1, cost: 0 }] }),
      'tokens'
    );
    expect(series.users).toEqual(['unknown']);
    expect(series.columns[1].segments).toEqual([{ user: 'unknown', value: 2 }]);
  });

  it('gives empty data a column per day, all zero', () => {
    const series = dailySeries(answer(), 'cost');
    expect(series.columns.map(c => c.total)).toEqual([0, 0, 0]);
    expect(series.users).toEqual([]);
    expect(series.max).toBe(0);
  });
});

describe('axes and bars', () => {
  it('rounds an axis up to 1, 2 or 5 times a power of ten', () => {
    expect([355, 120, 0.5, 0.3, 0.0032, 7, 10, 1001].map(niceCeiling)).toEqual([500, 200, 0.5, 0.5, 0.005, 10, 10, 2000]);
    expect(niceCeiling(0)).toBe(1);
    expect(niceCeiling(NaN)).toBe(1);
  });

  it('keeps an exact 1, 2 or 5 as the top despite floating point', () => {
    expect(niceCeiling(0.1 + 0.2 - 0.0000000000000001)).toBe(0.5);
    expect(niceCeiling(0.2)).toBe(0.2);
  });

  it('scales bars to the axis and never draws negative or overflowing ones', () => {
    expect(scaled(250, 500, 100)).toBe(50);
    expect(scaled(500, 500, 100)).toBe(100);
    expect(scaled(900, 500, 100)).toBe(100);
    expect(scaled(-3, 500, 100)).toBe(0);
    expect(scaled(3, 0, 100)).toBe(0);
  });

  it('sizes tool bars against the most used tool, failures apart', () => {
    const bars = toolBars([
      { tool: 'file_read', calls: 4, errors: 1, error_rate: 0.25, p50_ms: 3, p95_ms: 5, p99_ms: 5 },
      { tool: 'shell_run', calls: 2, errors: 2, error_rate: 1, p50_ms: null, p95_ms: null, p99_ms: null }
    ]);
    expect(bars.map(b => [b.tool, b.okFraction, b.errorFraction])).toEqual([
      ['file_read', 0.75, 0.25],
      ['shell_run', 0, 0.5]
    ]);
    expect(toolBars([])).toEqual([]);
  });

  it('shows the most used tools first, at most the limit', () => {
    const tools = ['a', 'b', 'c'].map((tool, i) => ({
      tool,
      calls: i + 1,
      errors: 0,
      error_rate: 0,
      p50_ms: null,
      p95_ms: null,
      p99_ms: null
    }));
    expect(toolBars(tools, 2).map(b => b.tool)).toEqual(['c', 'b']);
  });
});

describe('turn latency histogram', () => {
  it('turns cumulative buckets, "+Inf" last, into counts per bucket', () => {
    const bars = latencyBars(cumulative([50, 120, 130, 900, 700_000]));
    expect(bars).toHaveLength(13);
    expect(bars.map(b => b.count)).toEqual([1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(bars[12].le).toBe(Infinity);
    expect(bars.map(b => b.label).slice(0, 4)).toEqual(['≤100 ms', '≤250 ms', '≤500 ms', '≤1 s']);
    expect(bars[4].label).toBe('≤2.5 s');
    expect(bars[8].label).toBe('≤1 min');
    expect(bars[12].label).toBe('>10 min');
  });

  it('accepts buckets in any order and never counts below zero', () => {
    const bars = latencyBars([
      { le_ms: '+Inf', count: 3 },
      { le_ms: 250, count: 2 },
      { le_ms: 100, count: 3 }
    ]);
    expect(bars.map(b => [b.le, b.count])).toEqual([
      [100, 3],
      [250, 0],
      [Infinity, 0]
    ]);
  });

  it('gives empty data zero bars and no markers', () => {
    const bars = latencyBars(cumulative([]));
    expect(bars.every(b => b.count === 0)).toBe(true);
    expect(markerPosition(null, bars)).toBeNull();
    expect(markerPosition(100, [])).toBeNull();
  });

  it('places p50 and p95 within their bucket', () => {
    const bars = latencyBars(cumulative([]));
    expect(markerPosition(50, bars)).toBeCloseTo(0.5 / 13);
    expect(markerPosition(175, bars)).toBeCloseTo(1.5 / 13);
    expect(markerPosition(1000, bars)).toBeCloseTo(4 / 13);
    expect(markerPosition(2_000_000, bars)).toBeCloseTo(12.5 / 13);
  });
});

describe('totals', () => {
  const data = answer({
    totals: {
      sessions: 2,
      turns: 3,
      turns_failed: 1,
      prompt_tokens: 1200,
      completion_tokens: 300,
      cost: 0,
      cost_known: false,
      tool_calls: 4,
      tool_errors: 1
    },
    approvals: { requested: 2, approved: 1, denied: 1, timeout: 0, approval_rate: 0.5 },
    refusals: { count: 1, rate: 0.25 },
    turns_per_session: { mean: 1.5, p50: 1, max: 2 }
  });

  it('shows the figures people asked for, by key', () => {
    const shown = Object.fromEntries(figures(data).map(f => [f.key, f.value]));
    expect(shown).toEqual({
      turns: '3',
      sessions: '2',
      tokens: '1,500',
      cost: 'cost unknown',
      tool_calls: '4',
      error_rate: '25%',
      approval_rate: '50%',
      refusal_rate: '25%',
      turns_per_session: '1.5'
    });
  });

  it('says what it cannot know rather than showing 0', () => {
    const shown = Object.fromEntries(figures(answer()).map(f => [f.key, f.value]));
    expect(shown.error_rate).toBe('–');
    expect(shown.approval_rate).toBe('–');
    expect(shown.turns_per_session).toBe('–');
    expect(shown.cost).toBe('$0.00');
  });

  it('writes cost as known, unknown, or at least what is known', () => {
    expect(costText(1.5, true)).toBe('$1.50');
    expect(costText(0, false)).toBe('cost unknown');
    expect(costText(0.5, false)).toBe('≥ $0.50');
    expect(formatRate(0.0125)).toBe('1.3%');
  });

  it('labels axes without float noise', () => {
    expect([0, 0.005, 0.25, 2.5, 100].map(axisCost)).toEqual(['$0', '$0.005', '$0.25', '$2.5', '$100']);
    expect([0, 0.5, 1, 2000].map(axisCount)).toEqual(['0', '0.5', '1', '2,000']);
  });
});

/** An AgentApi whose answers the test hands out one by one, in any order. */
class ScriptedApi {
  readonly asked: string[] = [];
  readonly pending: { resolve: (a: Analytics) => void; reject: (e: Error) => void }[] = [];

  request<T>(path: string): Promise<T> {
    this.asked.push(path);
    return new Promise<Analytics>((resolve, reject) => this.pending.push({ resolve, reject })) as Promise<T>;
  }
}

describe('the usage model', () => {
  function model(): { usage: UsageModel; api: ScriptedApi } {
    const api = new ScriptedApi();
    return { usage: new UsageModel(api as unknown as AgentApi), api };
  }
  const settle = () => new Promise(resolve => setTimeout(resolve, 0));

  it('asks for the period and person chosen', () => {
    const { usage, api } = model();
    usage.setRange('2026-12-01', '2026-12-07');
    usage.setUser('alice');
    void usage.refresh();
    expect(api.asked.pop()).toBe('analytics?since=2026-12-01&until=2026-12-07&user=alice');
    usage.dispose();
  });

  it('shows only the answer to the latest question', async () => {
    const { usage, api } = model();
    usage.setRange('2026-12-01', '2026-12-07');
    void usage.refresh();
    usage.setRange('2026-12-02', '2026-12-07');
    void usage.refresh();
    api.pending[1].resolve(answer({ user: 'second' }));
    api.pending[0].resolve(answer({ user: 'first' }));
    await settle();
    expect(usage.state.data?.user).toBe('second');
    expect(usage.state.admin).toBe(true);
    usage.dispose();
  });

  it("shows the server's message, dropping data that answered another question", async () => {
    const { usage, api } = model();
    void usage.refresh();
    api.pending[0].resolve(answer());
    await settle();
    void usage.refresh();
    api.pending[1].reject(new AgentApiError('network', 'Cannot reach the Jupyter server'));
    await settle();
    expect(usage.state.error).toBe('Cannot reach the Jupyter server');
    expect(usage.state.data).not.toBeNull(); // same question: the last answer stays
    usage.setUser('bob');
    void usage.refresh();
    api.pending[2].reject(new AgentApiError('forbidden', "only admins may see another person's usage", 403));
    await settle();
    expect(usage.state.error).toBe("only admins may see another person's usage");
    expect(usage.state.data).toBeNull();
    usage.dispose();
  });
});
