import * as React from 'react';

import { elapsedSeconds, formatSeconds } from './planState';
import { PlanTask } from './protocol';

export interface PlanListProps {
  /** Every task, re-planned ones included (marked). */
  tasks: readonly PlanTask[];
  criticalPath: readonly string[];
  selected: string | null;
  now: number;
  onSelect: (taskId: string) => void;
}

/** The plan as a table: id, title, state, estimate against actual time, dependencies. */
export function PlanList({ tasks, criticalPath, selected, now, onSelect }: PlanListProps): JSX.Element {
  const critical = new Set(criticalPath);
  return (
    <div className="jp-AgentPlanner-listScroll">
      <table className="jp-AgentPlanner-list" data-testid="agent-plan-list" aria-label="Tasks of the plan">
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Title</th>
            <th scope="col">State</th>
            <th scope="col">Estimate</th>
            <th scope="col">Actual</th>
            <th scope="col">Depends on</th>
          </tr>
        </thead>
        <tbody>
          {tasks.map(task => {
            const elapsed = elapsedSeconds(task, now);
            const late = elapsed !== null && elapsed > task.estimate_s * 1.5;
            return (
              <tr
                key={`${task.id}${task.replaced ? '-replaced' : ''}`}
                className={`${selected === task.id && !task.replaced ? 'jp-mod-selected' : ''}${task.replaced ? ' jp-mod-replaced' : ''}`}
                data-testid="agent-plan-row"
                data-task={task.id}
                data-state={task.state}
              >
                <td>
                  {task.id}
                  {critical.has(task.id) && !task.replaced && (
                    <span className="jp-AgentPlanner-criticalMark" title="On the critical path" aria-label="on the critical path">
                      {' '}
                      ◆
                    </span>
                  )}
                </td>
                <td>
                  <button
                    className="jp-AgentPlanner-rowButton"
                    aria-label={`Show task ${task.id}: ${task.title}`}
                    disabled={task.replaced}
                    onClick={() => onSelect(task.id)}
                  >
                    {task.title}
                  </button>
                  {task.replaced && <span className="jp-AgentPlanner-note"> (re-planned)</span>}
                </td>
                <td>
                  <span className={`jp-AgentPlanner-state jp-mod-${task.state}`}>{task.state}</span>
                </td>
                <td>{formatSeconds(task.estimate_s)}</td>
                <td className={late ? 'jp-mod-late' : ''}>
                  {elapsed === null ? '–' : formatSeconds(elapsed)}
                  {task.state === 'running' && elapsed !== null ? ' so far' : ''}
                </td>
                <td>{task.depends_on.join(', ') || '–'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
