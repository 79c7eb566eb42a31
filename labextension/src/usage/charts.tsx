/**
 * The Agent Usage panel's charts, in plain SVG: cost or tokens per day (stacked by person), tools by calls
 * with their failures, and the turn-latency histogram with p50/p95 marked. Props in, nothing out; each bar
 * carries its figures in data attributes and a tooltip. Charts are drawn at their measured width, so their
 * text keeps the panel's size whatever the layout.
 */
import * as React from 'react';

import { Percentiles } from './protocol';
import { DailySeries, LatencyBar, markerPosition, msText, niceCeiling, scaled, ToolBar } from './shape';

const SERIES_COLOURS = 8;
/** The width drawn before the first measure, and the narrowest one drawn. */
const FALLBACK_WIDTH = 640;
const MIN_WIDTH = 320;
/** Room an axis label needs, in pixels. */
const LABEL_ROOM = 52;
const TOOL_ROW = 24;

/** The CSS class colouring a person's bars and legend swatch (by their place in the sorted list). */
export function seriesClass(users: readonly string[], user: string): string {
  return `jp-agent-usage-series-${Math.max(0, users.indexOf(user)) % SERIES_COLOURS}`;
}

/** The width of the element `ref` goes on, kept up to date (a hidden panel measures 0: keep the last). */
function useWidth(): [React.RefObject<HTMLDivElement>, number] {
  const ref = React.useRef<HTMLDivElement>(null);
  const [width, setWidth] = React.useState(FALLBACK_WIDTH);
  React.useLayoutEffect(() => {
    const element = ref.current;
    if (!element) {
      return;
    }
    const measure = () => {
      if (element.clientWidth > 0) {
        setWidth(Math.max(MIN_WIDTH, Math.floor(element.clientWidth)));
      }
    };
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

/** Whether slot `i` of `n`, each `slot` pixels wide, gets an axis label: evenly, counting from the last one. */
function labelled(i: number, n: number, slot: number): boolean {
  const stride = Math.max(1, Math.ceil(LABEL_ROOM / Math.max(slot, 1)));
  return (n - 1 - i) % stride === 0;
}

/** Axis ticks: 0, half and the top of the axis; only 0 when there is nothing to draw. */
function ticks(axisMax: number, empty: boolean): number[] {
  return empty ? [0] : [0, axisMax / 2, axisMax];
}

interface FrameProps {
  label: string;
  height: number;
  children: (width: number) => React.ReactNode;
  metric?: string;
}

/** A measured box holding an SVG as wide as it is. */
function Frame({ label, height, children, metric }: FrameProps): JSX.Element {
  const [ref, width] = useWidth();
  return (
    <div ref={ref} className="jp-agent-usage-chart">
      <svg
        className="jp-agent-usage-svg"
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={label}
        data-metric={metric}
      >
        {children(width)}
      </svg>
    </div>
  );
}

function EmptyNote({ x, y, text }: { x: number; y: number; text: string }): JSX.Element {
  return (
    <text className="jp-agent-usage-emptyNote" x={x} y={y} textAnchor="middle">
      {text}
    </text>
  );
}

interface GridProps {
  axisMax: number;
  empty: boolean;
  left: number;
  right: number;
  bottomY: number;
  plotH: number;
  format: (value: number) => string;
}

function Grid({ axisMax, empty, left, right, bottomY, plotH, format }: GridProps): JSX.Element {
  return (
    <>
      {ticks(axisMax, empty).map(v => {
        const y = bottomY - scaled(v, axisMax, plotH);
        return (
          <g key={v} className="jp-agent-usage-grid">
            <line x1={left} x2={right} y1={y} y2={y} />
            <text x={left - 6} y={y + 4} textAnchor="end">
              {format(v)}
            </text>
          </g>
        );
      })}
    </>
  );
}

export interface DailyChartProps {
  series: DailySeries;
  /** "cost" or "tokens": the chart's `data-metric`. */
  metric: string;
  format: (value: number) => string;
  /** Said in the middle of a chart without bars. */
  emptyText: string;
}

/** One bar per day of the period, stacked by person; days without use are gaps on the axis. */
export function DailyChart({ series, metric, format, emptyText }: DailyChartProps): JSX.Element {
  const height = 160;
  const left = 64;
  const top = 10;
  const bottom = 24;
  const plotH = height - top - bottom;
  const axisMax = niceCeiling(series.max);
  const n = series.columns.length;
  return (
    <Frame label={`${metric} per day`} height={height} metric={metric}>
      {width => {
        const plotW = width - left - 8;
        const slot = n ? plotW / n : plotW;
        const barW = Math.max(1, slot * 0.72);
        return (
          <>
            <Grid
              axisMax={axisMax}
              empty={series.max === 0}
              left={left}
              right={width - 8}
              bottomY={top + plotH}
              plotH={plotH}
              format={format}
            />
            {series.columns.map((column, i) => {
              const x = left + i * slot + (slot - barW) / 2;
              let y = top + plotH;
              return (
                <g key={column.day} className="jp-agent-usage-day" data-day={column.day} data-value={column.total}>
                  {column.segments.map(segment => {
                    const h = scaled(segment.value, axisMax, plotH);
                    y -= h;
                    return (
                      <rect
                        key={segment.user}
                        className={`jp-agent-usage-bar ${seriesClass(series.users, segment.user)}`}
                        data-user={segment.user}
                        data-value={segment.value}
                        x={x}
                        y={y}
                        width={barW}
                        height={h}
                      >
                        <title>{`${column.day} · ${segment.user}: ${format(segment.value)}`}</title>
                      </rect>
                    );
                  })}
                  {labelled(i, n, slot) ? (
                    <text className="jp-agent-usage-axisLabel" x={x + barW / 2} y={height - 8} textAnchor="middle">
                      {column.day.slice(5)}
                    </text>
                  ) : null}
                </g>
              );
            })}
            {series.max === 0 ? <EmptyNote x={left + plotW / 2} y={top + plotH / 2} text={emptyText} /> : null}
          </>
        );
      }}
    </Frame>
  );
}

/** Who the colours of a stacked chart stand for. */
export function Legend({ users }: { users: readonly string[] }): JSX.Element | null {
  if (users.length < 2) {
    return null;
  }
  return (
    <ul className="jp-agent-usage-legend">
      {users.map(user => (
        <li key={user}>
          <span className={`jp-agent-usage-swatch ${seriesClass(users, user)}`} />
          {user}
        </li>
      ))}
    </ul>
  );
}

/** The most used tools as horizontal bars: the calls that went well, then the failed ones in the error colour. */
export function ToolsChart({ bars }: { bars: readonly ToolBar[] }): JSX.Element {
  const label = 150;
  const figures = 120;
  const height = Math.max(1, bars.length) * TOOL_ROW + 8;
  return (
    <Frame label="Tools by calls" height={height}>
      {width => {
        const plotW = width - label - figures;
        return (
          <>
            {bars.map((bar, i) => {
              const y = 4 + i * TOOL_ROW;
              const ok = bar.okFraction * plotW;
              const failed = bar.errorFraction * plotW;
              const name = bar.tool.length > 22 ? `${bar.tool.slice(0, 21)}…` : bar.tool;
              return (
                <g
                  key={bar.tool}
                  className="jp-agent-usage-tool"
                  data-tool={bar.tool}
                  data-calls={bar.calls}
                  data-errors={bar.errors}
                >
                  <title>{`${bar.tool}: ${bar.calls} calls, ${bar.errors} failed`}</title>
                  <text className="jp-agent-usage-toolName" x={label - 8} y={y + 15} textAnchor="end">
                    {name}
                  </text>
                  <rect
                    className="jp-agent-usage-bar jp-agent-usage-bar-ok"
                    x={label}
                    y={y + 3}
                    width={ok}
                    height={TOOL_ROW - 8}
                  />
                  <rect
                    className="jp-agent-usage-bar jp-agent-usage-bar-error"
                    x={label + ok}
                    y={y + 3}
                    width={failed}
                    height={TOOL_ROW - 8}
                  />
                  <text className="jp-agent-usage-toolFigures" x={label + ok + failed + 6} y={y + 15}>
                    {`${bar.calls} ${bar.calls === 1 ? 'call' : 'calls'}${bar.errors ? ` · ${bar.errors} failed` : ''}`}
                  </text>
                </g>
              );
            })}
            {bars.length ? null : <EmptyNote x={width / 2} y={20} text="No tool calls in this period" />}
          </>
        );
      }}
    </Frame>
  );
}

export interface LatencyChartProps {
  bars: readonly LatencyBar[];
  turnMs: Percentiles;
}

/** Turns per duration bucket, with where the median and the 95th percentile fall. */
export function LatencyChart({ bars, turnMs }: LatencyChartProps): JSX.Element {
  const height = 190;
  const left = 36;
  const top = 34;
  const bottom = 24;
  const plotH = height - top - bottom;
  const most = Math.max(0, ...bars.map(b => b.count));
  const axisMax = niceCeiling(most);
  const markers = [
    { name: 'p50', ms: turnMs.p50, row: 0 },
    { name: 'p95', ms: turnMs.p95, row: 1 }
  ];
  return (
    <Frame label="Turn latency" height={height}>
      {width => {
        const plotW = width - left - 8;
        const slot = bars.length ? plotW / bars.length : plotW;
        const barW = slot * 0.8;
        return (
          <>
            <Grid
              axisMax={axisMax}
              empty={most === 0}
              left={left}
              right={width - 8}
              bottomY={top + plotH}
              plotH={plotH}
              format={v => (Number.isInteger(v) ? String(v) : '')}
            />
            {bars.map((bar, i) => {
              const x = left + i * slot + (slot - barW) / 2;
              const h = scaled(bar.count, axisMax, plotH);
              return (
                <g key={bar.label} className="jp-agent-usage-bucket" data-le={bar.le} data-count={bar.count}>
                  <rect
                    className="jp-agent-usage-bar jp-agent-usage-bar-latency"
                    x={x}
                    y={top + plotH - h}
                    width={barW}
                    height={h}
                  >
                    <title>{`${bar.label}: ${bar.count} ${bar.count === 1 ? 'turn' : 'turns'}`}</title>
                  </rect>
                  {bar.count ? (
                    <text className="jp-agent-usage-barValue" x={x + barW / 2} y={top + plotH - h - 3} textAnchor="middle">
                      {bar.count}
                    </text>
                  ) : null}
                  {labelled(i, bars.length, slot) ? (
                    <text className="jp-agent-usage-axisLabel" x={x + barW / 2} y={height - 8} textAnchor="middle">
                      {bar.label}
                    </text>
                  ) : null}
                </g>
              );
            })}
            {markers.map(marker => {
              const at = markerPosition(marker.ms, bars);
              if (at === null) {
                return null;
              }
              const x = left + at * plotW;
              const labelY = 11 + marker.row * 13;
              return (
                <g
                  key={marker.name}
                  className={`jp-agent-usage-marker jp-agent-usage-marker-${marker.name}`}
                  data-ms={marker.ms ?? ''}
                >
                  <line x1={x} x2={x} y1={labelY + 3} y2={top + plotH} />
                  <text x={x} y={labelY} textAnchor={at > 0.8 ? 'end' : 'start'}>
                    {`${marker.name} ${msText(marker.ms)}`}
                  </text>
                </g>
              );
            })}
            {most === 0 ? <EmptyNote x={left + plotW / 2} y={top + plotH / 2} text="No turns in this period" /> : null}
          </>
        );
      }}
    </Frame>
  );
}
