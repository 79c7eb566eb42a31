import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { Approval } from '../components/Approval';
import { MessageList } from '../components/MessageList';
import { ConversationState, PendingApproval } from '../conversation';
import { ApprovalDecision } from '../protocol';
import { ToolRenderer } from '../registry';
import { estimateText, taskControls } from './planState';
import { PlanSnapshot, PlanTask, TaskAction } from './protocol';

export interface TaskDetailsProps {
  plan: PlanSnapshot;
  task: PlanTask;
  transcript: ConversationState;
  /** Calls of the task waiting for a person's approval; answered with `onDecide`, as in the chat. */
  approvals: readonly PendingApproval[];
  onDecide: (callId: string, decision: ApprovalDecision) => boolean;
  now: number;
  rendermime: IRenderMimeRegistry;
  getRenderer: (toolName: string) => ToolRenderer;
  onControl: (action: TaskAction, taskId: string) => void;
  onClose: () => void;
}

/** One task: what it is for, how long it took against its estimate, its controls and its transcript. */
export function TaskDetails(props: TaskDetailsProps): JSX.Element {
  const { plan, task, now } = props;
  const controls = taskControls(plan, task);
  const button = (action: TaskAction, label: string, enabled: boolean, warn = false) => (
    <button
      className={`jp-mod-styled jp-AgentPlanner-small${warn ? ' jp-mod-warn' : ''}`}
      data-testid={`agent-task-${action}`}
      aria-label={`${label} task ${task.id}`}
      disabled={!enabled}
      onClick={() => props.onControl(action, task.id)}
    >
      {label}
    </button>
  );
  return (
    <section
      className="jp-AgentPlanner-details"
      data-testid="agent-task-details"
      data-task={task.id}
      aria-label={`Task ${task.id}: ${task.title}`}
    >
      <div className="jp-AgentPlanner-detailsHeader">
        <span className={`jp-AgentPlanner-state jp-mod-${task.state}`} data-testid="agent-task-state">
          {task.state}
        </span>
        <h3 className="jp-AgentPlanner-detailsTitle">
          {task.id} · {task.title}
        </h3>
        <button
          className="jp-AgentPlanner-close"
          aria-label="Close the task details"
          title="Close"
          onClick={props.onClose}
        >
          ×
        </button>
      </div>
      {task.description && <p className="jp-AgentPlanner-description">{task.description}</p>}
      <dl className="jp-AgentPlanner-facts">
        <dt>Time</dt>
        <dd data-testid="agent-task-time">{estimateText(task, now)}</dd>
        {task.depends_on.length > 0 && (
          <>
            <dt>After</dt>
            <dd>{task.depends_on.join(', ')}</dd>
          </>
        )}
        {task.tools.length > 0 && (
          <>
            <dt>Tools</dt>
            <dd>{task.tools.join(', ')}</dd>
          </>
        )}
        {task.acceptance && (
          <>
            <dt>Done when</dt>
            <dd>{task.acceptance}</dd>
          </>
        )}
        {task.attempt > 1 && (
          <>
            <dt>Attempts</dt>
            <dd>{task.attempt}</dd>
          </>
        )}
      </dl>
      {task.error && (
        <div className="jp-AgentPlanner-taskError" role="alert">
          {task.error}
        </div>
      )}
      {task.summary && (
        <div className="jp-AgentPlanner-summary" data-testid="agent-task-summary">
          {task.summary}
        </div>
      )}
      {props.approvals.map(a => (
        <Approval key={a.callId} approval={a} onDecide={props.onDecide} />
      ))}
      <div className="jp-AgentPlanner-taskButtons">
        {button('retry', 'Retry', controls.retry)}
        {button('skip', 'Skip', controls.skip)}
        {button('cancel', 'Cancel', controls.cancel, true)}
      </div>
      <div className="jp-AgentPlanner-transcript" data-testid="agent-task-transcript" aria-label={`Transcript of task ${task.id}`}>
        <MessageList
          items={props.transcript.items}
          rendermime={props.rendermime}
          getRenderer={props.getRenderer}
          thinkingExpanded={false}
          emptyText={
            task.state === 'pending' || task.state === 'ready'
              ? 'The task has not started yet.'
              : 'Nothing was recorded for this task.'
          }
        />
      </div>
    </section>
  );
}
