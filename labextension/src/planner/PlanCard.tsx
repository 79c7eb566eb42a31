import * as React from 'react';

import { PlanItem } from '../viewModel';
import { STATUS_LABEL } from './planState';
import { PlanStatus } from './protocol';

export interface PlanCardProps {
  item: PlanItem;
  /** Shows the planner panel; without it the card has no button. */
  onOpen?: () => void;
}

/** A plan in the chat: its goal, how many tasks and how far, and a way to the planner panel. */
export function PlanCard({ item, onOpen }: PlanCardProps): JSX.Element {
  const states = Object.values(item.tasks);
  const count = (state: string) => states.filter(s => s === state).length;
  const [done, skipped, failed] = [count('done'), count('skipped'), count('failed')];
  const status = STATUS_LABEL[item.status as PlanStatus] ?? item.status;
  const counts = states.length
    ? [
        `${states.length} task${states.length === 1 ? '' : 's'}`,
        `${done} done`,
        ...(skipped ? [`${skipped} skipped`] : []),
        ...(failed ? [`${failed} failed`] : [])
      ].join(' · ')
    : 'making the plan…';
  return (
    <div
      className={`jp-AgentPlanCard jp-mod-${item.status}`}
      data-testid="agent-plan-card"
      data-plan={item.planId}
      data-status={item.status}
      role="group"
      aria-label={`Plan: ${item.goal}`}
    >
      <div className="jp-AgentPlanCard-header">
        <span className="jp-AgentPlanCard-label">Plan</span>
        <span className={`jp-AgentPlanner-status jp-mod-${item.status}`} data-testid="agent-plan-card-status">
          {status}
        </span>
      </div>
      <div className="jp-AgentPlanCard-goal">{item.goal}</div>
      <div className="jp-AgentPlanCard-meta">
        <span>{counts}</span>
        {states.length > 0 && (
          <span className="jp-AgentPlanner-bar" aria-hidden="true">
            <span style={{ width: `${(100 * (done + skipped)) / states.length}%` }} />
          </span>
        )}
      </div>
      {onOpen && (
        <button
          className="jp-mod-styled jp-AgentPlanCard-open"
          data-testid="agent-plan-open"
          aria-label="Open in planner"
          onClick={onOpen}
        >
          Open in planner
        </button>
      )}
    </div>
  );
}
