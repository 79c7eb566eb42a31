import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { ConversationState, PendingApproval } from '../conversation';
import { ApprovalDecision } from '../protocol';
import { ToolRenderer } from '../registry';
import { draftFromPlan, PlanDraft, toPlanEdit } from './editModel';
import { PlannerState } from './model';
import { PlanEditor } from './PlanEditor';
import { PlanGraph } from './PlanGraph';
import { PlanList } from './PlanList';
import { expectedFinishText, formatSeconds, liveTasks, planControls, progress, STATUS_LABEL } from './planState';
import { PlanEditBody, TaskAction, TASK_STATES } from './protocol';
import { TaskDetails } from './TaskDetails';

export interface PlannerActions {
  approve(): void;
  edit(plan: PlanEditBody): void;
  control(action: TaskAction, taskId?: string): void;
  transcript(taskId: string): ConversationState;
  /** The calls of the tasks waiting for a person's approval, by task id, and a person's answer to one. */
  approvals(): ReadonlyMap<string, readonly PendingApproval[]>;
  decide(callId: string, decision: ApprovalDecision): boolean;
  dismissError(): void;
}

export interface PlannerViewProps {
  state: PlannerState;
  actions: PlannerActions;
  rendermime: IRenderMimeRegistry;
  getRenderer: (toolName: string) => ToolRenderer;
}

type View = 'graph' | 'list';

/** The planner panel: the plan's header and controls, its DAG (or table), and the chosen task. */
export function PlannerView({ state, actions, rendermime, getRenderer }: PlannerViewProps): JSX.Element {
  const { plan } = state;
  const [view, setView] = React.useState<View>('graph');
  const [selected, setSelected] = React.useState<string | null>(null);
  const [draft, setDraft] = React.useState<PlanDraft | null>(null);
  const running = !!plan && plan.tasks.some(t => t.state === 'running');
  const now = useNow(running ? 1000 : null);

  React.useEffect(() => {
    setSelected(null);
    setDraft(null);
  }, [state.sessionId, plan?.id]);

  if (!state.sessionId) {
    return <Frame>{empty('Open the agent chat and pick a session: its plan shows here.')}</Frame>;
  }
  if (!plan) {
    return (
      <Frame>
        {state.error && <ErrorBanner error={state.error} onDismiss={actions.dismissError} />}
        {empty(
          state.loading
            ? 'Loading the plan…'
            : 'This session has no plan yet. In the chat, switch on “Plan first” and send a goal: the agent splits it into tasks you approve here.'
        )}
      </Frame>
    );
  }

  const live = liveTasks(plan);
  const done = progress(plan);
  const controls = planControls(plan);
  const task = selected ? live.find(t => t.id === selected) ?? null : null;
  const finish = expectedFinishText(plan, now);
  const asking = actions.approvals();
  const select = (id: string) => setSelected(id === selected ? null : id);

  return (
    <Frame status={plan.status}>
      <header className="jp-AgentPlanner-header">
        <div className="jp-AgentPlanner-titleRow">
          <h2 className="jp-AgentPlanner-goal" data-testid="agent-plan-goal" title={plan.goal}>
            {plan.goal}
          </h2>
          <span className={`jp-AgentPlanner-status jp-mod-${plan.status}`} data-testid="agent-plan-status" data-status={plan.status}>
            {STATUS_LABEL[plan.status] ?? plan.status}
          </span>
        </div>
        <div className="jp-AgentPlanner-facts-row">
          <span
            className="jp-AgentPlanner-bar jp-mod-large"
            role="progressbar"
            aria-label="Tasks finished"
            aria-valuemin={0}
            aria-valuemax={done.total}
            aria-valuenow={done.finished}
            data-testid="agent-plan-progress"
          >
            <span style={{ width: `${Math.round(100 * done.fraction)}%` }} />
          </span>
          <span>
            {done.finished} of {done.total} tasks finished
            {done.running ? ` · ${done.running} running` : ''}
          </span>
          {finish && <span data-testid="agent-plan-finish">Expected finish: {finish}</span>}
          {plan.critical_path.length > 0 && (
            <span title={plan.critical_path.join(' → ')}>Critical path: {formatSeconds(plan.critical_path_s)}</span>
          )}
          {plan.replans > 0 && <span>Re-planned {plan.replans}×</span>}
        </div>
        {plan.error && (
          <div className="jp-AgentPlanner-planError" role="alert">
            {plan.error}
          </div>
        )}
        <div className="jp-AgentPlanner-toolbar" role="toolbar" aria-label="Plan controls">
          {controls.approve && (
            <button
              className="jp-mod-styled jp-mod-accept"
              data-testid="agent-plan-approve"
              aria-label="Approve the plan and run it"
              onClick={() => actions.approve()}
            >
              Approve
            </button>
          )}
          <button
            className="jp-mod-styled"
            data-testid="agent-plan-edit"
            aria-label="Edit the plan"
            aria-pressed={draft !== null}
            disabled={!controls.edit || draft !== null}
            onClick={() => setDraft(draftFromPlan(plan))}
          >
            Edit
          </button>
          {controls.resume ? (
            <button
              className="jp-mod-styled"
              data-testid="agent-plan-resume"
              aria-label="Resume the plan"
              onClick={() => actions.control('resume')}
            >
              Resume
            </button>
          ) : (
            <button
              className="jp-mod-styled"
              data-testid="agent-plan-pause"
              aria-label="Pause the plan"
              title="No new task starts; running ones finish"
              disabled={!controls.pause}
              onClick={() => actions.control('pause')}
            >
              Pause
            </button>
          )}
          <button
            className="jp-mod-styled jp-mod-warn"
            data-testid="agent-plan-cancel"
            aria-label="Cancel the plan"
            disabled={!controls.cancel}
            onClick={() => actions.control('cancel')}
          >
            Cancel plan
          </button>
          <span className="jp-AgentPlanner-spacer" />
          <div className="jp-AgentPlanner-viewToggle" role="group" aria-label="Show the plan as">
            <button
              className={view === 'graph' ? 'jp-mod-active' : ''}
              data-testid="agent-plan-view-graph"
              aria-pressed={view === 'graph'}
              aria-label="Show as a graph"
              onClick={() => setView('graph')}
            >
              Graph
            </button>
            <button
              className={view === 'list' ? 'jp-mod-active' : ''}
              data-testid="agent-plan-view-list"
              aria-pressed={view === 'list'}
              aria-label="Show as a list"
              onClick={() => setView('list')}
            >
              List
            </button>
          </div>
        </div>
      </header>
      {state.error && <ErrorBanner error={state.error} onDismiss={actions.dismissError} />}
      <div className="jp-AgentPlanner-body">
        <div className="jp-AgentPlanner-main">
          {draft ? (
            <PlanEditor
              draft={draft}
              onChange={setDraft}
              onSave={() => {
                actions.edit(toPlanEdit(draft));
                setDraft(null);
              }}
              onDiscard={() => setDraft(null)}
            />
          ) : view === 'graph' ? (
            <>
              <PlanGraph
                tasks={live}
                criticalPath={plan.critical_path}
                selected={selected}
                asking={asking}
                now={now}
                onSelect={select}
              />
              <Legend />
            </>
          ) : (
            <PlanList tasks={plan.tasks} criticalPath={plan.critical_path} selected={selected} now={now} onSelect={select} />
          )}
        </div>
        {task && (
          <TaskDetails
            plan={plan}
            task={task}
            transcript={actions.transcript(task.id)}
            approvals={asking.get(task.id) ?? []}
            onDecide={actions.decide}
            now={now}
            rendermime={rendermime}
            getRenderer={getRenderer}
            onControl={(action, id) => actions.control(action, id)}
            onClose={() => setSelected(null)}
          />
        )}
      </div>
    </Frame>
  );
}

function Frame({ status, children }: { status?: string; children: React.ReactNode }): JSX.Element {
  return (
    <div className="jp-AgentPlanner-panel" data-testid="agent-planner" data-status={status ?? 'none'}>
      {children}
    </div>
  );
}

function empty(text: string): JSX.Element {
  return <div className="jp-AgentPlanner-empty">{text}</div>;
}

function ErrorBanner({ error, onDismiss }: { error: string; onDismiss: () => void }): JSX.Element {
  return (
    <div className="jp-AgentPlanner-error" role="alert" data-testid="agent-plan-error">
      <span>{error}</span>
      <button className="jp-AgentPlanner-close" aria-label="Dismiss the error" title="Dismiss" onClick={onDismiss}>
        ×
      </button>
    </div>
  );
}

/** What the node colours mean. */
function Legend(): JSX.Element {
  return (
    <ul className="jp-AgentPlanner-legend" aria-label="Task states">
      {TASK_STATES.map(s => (
        <li key={s}>
          <span className={`jp-AgentPlanner-swatch jp-mod-${s}`} aria-hidden="true" />
          {s}
        </li>
      ))}
      <li>
        <span className="jp-AgentPlanner-swatch jp-mod-critical" aria-hidden="true" />
        critical path
      </li>
    </ul>
  );
}

/** The time in epoch seconds, refreshed every `intervalMs` (not at all when null). */
function useNow(intervalMs: number | null): number {
  const [now, setNow] = React.useState(() => Date.now() / 1000);
  React.useEffect(() => {
    setNow(Date.now() / 1000);
    if (intervalMs === null) {
      return;
    }
    const timer = setInterval(() => setNow(Date.now() / 1000), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
