import * as React from 'react';

import { DEFAULT_LAYOUT, layoutGraph } from './layout';
import { estimateText } from './planState';
import { PlanTask } from './protocol';

export interface PlanGraphProps {
  tasks: readonly PlanTask[];
  criticalPath: readonly string[];
  selected: string | null;
  /** Tasks with a call waiting for a person's approval (answered in their details), by task id. */
  asking?: ReadonlyMap<string, unknown>;
  /** Epoch seconds, for the time running tasks have taken so far. */
  now: number;
  onSelect: (taskId: string) => void;
}

/** The smallest the graph is drawn to fit the panel; below that it scrolls. */
const MIN_SCALE = 0.8;
/** Characters of a title that fit in a node (at the node font's average width). */
const TITLE_CHARS = Math.floor((DEFAULT_LAYOUT.nodeWidth - 20) / 6.6);

/** The plan's DAG as SVG: tasks coloured by state, dependencies as arrows, the critical path outlined. */
export function PlanGraph({ tasks, criticalPath, selected, asking, now, onSelect }: PlanGraphProps): JSX.Element {
  const layout = React.useMemo(
    () => layoutGraph(tasks, criticalPath),
    // Only the shape matters here, not the tasks' states.
    [tasks.map(t => `${t.id}:${t.depends_on.join(',')}`).join(';'), criticalPath.join(',')]
  );
  const byId = new Map(tasks.map(t => [t.id, t]));
  const critical = new Set(criticalPath);
  const onKeyDown = (id: string) => (e: React.KeyboardEvent) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      onSelect(id);
    }
  };
  return (
    <div className="jp-AgentPlanner-graphScroll">
      <svg
        className="jp-AgentPlanner-graph"
        data-testid="agent-plan-graph"
        role="group"
        aria-label={`Task graph: ${tasks.length} tasks; the critical path is ${criticalPath.join(', ') || 'empty'}`}
        width={layout.width}
        height={layout.height}
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        // Shrinks to the panel's width down to MIN_SCALE, then scrolls.
        style={{ minWidth: layout.width * MIN_SCALE }}
      >
        <defs>
          <marker
            id="jp-AgentPlanner-arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="7"
            markerHeight="7"
            orient="auto-start-reverse"
          >
            <path d="M0,0 L10,5 L0,10 z" className="jp-AgentPlanner-arrowHead" />
          </marker>
        </defs>
        {criticalPath.length > 0 && (
          <g className="jp-AgentPlanner-critical" data-testid="agent-plan-critical" aria-hidden="true">
            {layout.edges
              .filter(e => e.critical)
              .map(e => (
                <path key={`${e.from}>${e.to}`} d={e.d} className="jp-AgentPlanner-criticalEdge" />
              ))}
            {layout.nodes
              .filter(n => critical.has(n.id))
              .map(n => (
                <rect
                  key={n.id}
                  x={n.x - 4}
                  y={n.y - 4}
                  width={n.width + 8}
                  height={n.height + 8}
                  rx={10}
                  className="jp-AgentPlanner-criticalHalo"
                />
              ))}
          </g>
        )}
        <g aria-hidden="true">
          {layout.edges.map(e => (
            <path
              key={`${e.from}>${e.to}`}
              d={e.d}
              className={`jp-AgentPlanner-edge${e.critical ? ' jp-mod-critical' : ''}`}
              data-testid="agent-plan-edge"
              data-from={e.from}
              data-to={e.to}
              data-critical={e.critical}
              markerEnd="url(#jp-AgentPlanner-arrow)"
            />
          ))}
        </g>
        {layout.nodes.map(n => {
          const task = byId.get(n.id)!;
          const onPath = critical.has(n.id);
          const asks = !!asking?.has(n.id);
          const title = task.title.length > TITLE_CHARS ? `${task.title.slice(0, TITLE_CHARS - 1)}…` : task.title;
          return (
            <g
              key={n.id}
              transform={`translate(${n.x},${n.y})`}
              className={`jp-AgentPlanner-node jp-mod-${task.state}${asks ? ' jp-mod-asking' : ''}${selected === n.id ? ' jp-mod-selected' : ''}`}
              data-testid="agent-plan-node"
              data-task={n.id}
              data-state={task.state}
              data-asking={asks}
              data-critical={onPath}
              role="button"
              tabIndex={0}
              aria-pressed={selected === n.id}
              aria-label={`Task ${n.id}: ${task.title}, ${task.state}${asks ? ', waiting for your approval' : ''}${onPath ? ', on the critical path' : ''}`}
              onClick={() => onSelect(n.id)}
              onKeyDown={onKeyDown(n.id)}
            >
              <title>{`${task.title}\n${task.state} · ${estimateText(task, now)}`}</title>
              <rect width={n.width} height={n.height} rx={6} className="jp-AgentPlanner-nodeBox" />
              <rect width={5} height={n.height} rx={2} className="jp-AgentPlanner-nodeStripe" />
              <text x={12} y={16} className="jp-AgentPlanner-nodeId">
                {n.id} · {asks ? 'needs approval' : task.state}
                {task.attempt > 1 ? ` · try ${task.attempt}` : ''}
              </text>
              <text x={12} y={33} className="jp-AgentPlanner-nodeTitle">
                {title}
              </text>
              <text x={12} y={49} className="jp-AgentPlanner-nodeTime">
                {estimateText(task, now)}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
