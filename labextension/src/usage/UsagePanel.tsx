/**
 * The Agent Usage panel's view: the period and person pickers, the totals, the charts and the tools table.
 * Props in, callbacks out; UsageModel fetches.
 */
import * as React from 'react';

import { formatCount } from '../components/format';
import { DailyChart, LatencyChart, Legend, ToolsChart } from './charts';
import { QUICK_RANGES, UsageState } from './model';
import { Analytics, AnalyticsTool } from './protocol';
import { axisCost, axisCount, dailySeries, figures, formatRate, latencyBars, msText, toolBars } from './shape';

export interface UsageActions {
  setRange: (since: string, until: string) => void;
  setQuickRange: (days: number) => void;
  setUser: (user: string | null) => void;
  refresh: () => void;
}

export interface UsagePanelProps {
  state: UsageState;
  actions: UsageActions;
}

export function UsagePanel({ state, actions }: UsagePanelProps): JSX.Element {
  const { data, error } = state;
  return (
    <div className="jp-agent-usage" data-scope={data?.scope ?? ''} data-loading={state.loading}>
      <Header state={state} actions={actions} />
      {error ? (
        <div className="jp-agent-usage-error" role="alert">
          {error}
        </div>
      ) : null}
      {data ? <Report data={data} /> : state.loading ? <div className="jp-agent-usage-placeholder">Loading…</div> : null}
    </div>
  );
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function Header({ state, actions }: UsagePanelProps): JSX.Element {
  const { query, quickDays } = state;
  // Drafts, so a date half typed in is not put back to the last full one on every render.
  const [since, setSince] = React.useState(query.since);
  const [until, setUntil] = React.useState(query.until);
  React.useEffect(() => setSince(query.since), [query.since]);
  React.useEffect(() => setUntil(query.until), [query.until]);
  const pick = (nextSince: string, nextUntil: string) => {
    setSince(nextSince);
    setUntil(nextUntil);
    if (DATE.test(nextSince) && DATE.test(nextUntil)) {
      actions.setRange(nextSince, nextUntil);
    }
  };
  return (
    <div className="jp-agent-usage-header">
      <h2 className="jp-agent-usage-title">Agent usage</h2>
      <div className="jp-agent-usage-rangePicker" role="group" aria-label="Period (UTC days, both included)">
        <label>
          From{' '}
          <input
            type="date"
            className="jp-agent-usage-range"
            data-bound="since"
            value={since}
            onChange={e => pick(e.target.value, until)}
          />
        </label>
        <label>
          to{' '}
          <input
            type="date"
            className="jp-agent-usage-range"
            data-bound="until"
            value={until}
            onChange={e => pick(since, e.target.value)}
          />
        </label>
        {QUICK_RANGES.map(days => (
          <button
            key={days}
            className="jp-agent-usage-quick"
            data-days={days}
            aria-pressed={quickDays === days}
            title={`The last ${days} days, today included`}
            onClick={() => actions.setQuickRange(days)}
          >
            {days} days
          </button>
        ))}
      </div>
      {state.admin ? (
        <label className="jp-agent-usage-userPicker">
          Person{' '}
          <select
            className="jp-agent-usage-user"
            value={query.user ?? ''}
            onChange={e => actions.setUser(e.target.value || null)}
          >
            <option value="">Everyone</option>
            {state.users.map(user => (
              <option key={user} value={user}>
                {user}
              </option>
            ))}
          </select>
        </label>
      ) : null}
      <span className="jp-agent-usage-updated" title="The panel asks again every 10 seconds while it is shown">
        {state.updated ? `Live · updated ${new Date(state.updated).toLocaleTimeString()}` : ''}
      </span>
      <button className="jp-agent-usage-refresh" onClick={actions.refresh} title="Ask the server now">
        Refresh
      </button>
    </div>
  );
}

function Report({ data }: { data: Analytics }): JSX.Element {
  const cost = dailySeries(data, 'cost');
  const tokens = dailySeries(data, 'tokens');
  const latency = latencyBars(data.latency.histogram);
  const { turn_ms: turn, ttft_ms: ttft } = data.latency;
  return (
    <div className="jp-agent-usage-report">
      <dl className="jp-agent-usage-totals">
        {figures(data).map(f => (
          <div key={f.key} className="jp-agent-usage-figure" data-metric={f.key}>
            <dt>{f.label}</dt>
            <dd className="jp-agent-usage-figureValue">{f.value}</dd>
            {f.detail ? <dd className="jp-agent-usage-figureDetail">{f.detail}</dd> : null}
          </div>
        ))}
      </dl>
      <section className="jp-agent-usage-card jp-agent-usage-cost-chart" data-empty={tokens.max === 0 && cost.max === 0}>
        <h3>
          Cost per day{data.totals.cost_known ? '' : <span className="jp-agent-usage-note"> (where prices are known)</span>}
        </h3>
        <DailyChart
          series={cost}
          metric="cost"
          format={axisCost}
          emptyText={tokens.max > 0 ? 'No known cost in this period' : 'No usage in this period'}
        />
        <h3>Tokens per day</h3>
        <DailyChart series={tokens} metric="tokens" format={axisCount} emptyText="No usage in this period" />
        <Legend users={tokens.users} />
        {tokens.truncated ? <p className="jp-agent-usage-note">The chart shows the last {tokens.columns.length} days.</p> : null}
      </section>
      <section className="jp-agent-usage-card jp-agent-usage-tools-chart" data-empty={data.tools.length === 0}>
        <h3>Tools by calls</h3>
        <ToolsChart bars={toolBars(data.tools)} />
      </section>
      <section
        className="jp-agent-usage-card jp-agent-usage-latency-chart"
        data-empty={data.totals.turns === 0}
      >
        <h3>Turn latency</h3>
        <p className="jp-agent-usage-note">
          {`Median ${msText(turn.p50)} · 95th percentile ${msText(turn.p95)} · first token: median ${msText(
            ttft.p50
          )}, 95th percentile ${msText(ttft.p95)}`}
        </p>
        <LatencyChart bars={latency} turnMs={turn} />
      </section>
      <section className="jp-agent-usage-card jp-agent-usage-tools-table">
        <h3>Tools</h3>
        <ToolsTable tools={data.tools} />
      </section>
    </div>
  );
}

function ToolsTable({ tools }: { tools: readonly AnalyticsTool[] }): JSX.Element {
  if (!tools.length) {
    return <p className="jp-agent-usage-note">No tool calls in this period.</p>;
  }
  return (
    <table className="jp-agent-usage-table">
      <thead>
        <tr>
          <th>Tool</th>
          <th>Calls</th>
          <th>Errors</th>
          <th>Error rate</th>
          <th>p50</th>
          <th>p95</th>
          <th>p99</th>
        </tr>
      </thead>
      <tbody>
        {tools.map(t => (
          <tr key={t.tool} data-tool={t.tool}>
            <td>{t.tool}</td>
            <td>{formatCount(t.calls)}</td>
            <td>{formatCount(t.errors)}</td>
            <td>{formatRate(t.error_rate)}</td>
            <td>{msText(t.p50_ms)}</td>
            <td>{msText(t.p95_ms)}</td>
            <td>{msText(t.p99_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
