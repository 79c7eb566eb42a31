/**
 * Pure plan arithmetic for the planner panel: folding `plan` and `task_update` events into the plan,
 * progress, which controls apply, a task's transcript and the texts shown for times.
 */
import { ConversationState, EMPTY_CONVERSATION, foldEvents, PendingApproval } from '../conversation';
import { AgentEvent } from '../protocol';
import { PlanSnapshot, PlannerEvent, PlanStatus, PlanTask, planFromEvent, TaskState } from './protocol';

/** Plan states in which a run is live on the server (controls act on it directly). */
const LIVE: readonly PlanStatus[] = ['draft', 'awaiting_approval', 'running', 'paused'];
/** Plan states that `resume` (and a task's `retry`) start again, in a new turn. */
const RESUMABLE: readonly PlanStatus[] = ['interrupted', 'failed', 'cancelled'];
const FINISHED: readonly TaskState[] = ['done', 'failed', 'skipped', 'cancelled'];

/** The plan after one event: a `plan` event replaces it, a `task_update` changes one task. */
export function applyPlanEvent(plan: PlanSnapshot | null, event: PlannerEvent): PlanSnapshot | null {
  if (event.type === 'plan') {
    return planFromEvent(event);
  }
  if (event.type !== 'task_update' || !plan) {
    return plan;
  }
  const update = event as unknown as Record<string, unknown>;
  const id = update.id ?? update.task;
  const index = plan.tasks.findIndex(t => t.id === id && !t.replaced);
  if (index < 0) {
    return plan;
  }
  const changed: Partial<PlanTask> = {};
  for (const key of ['state', 'started', 'finished', 'estimate_s', 'actual_s', 'summary', 'attempt', 'error'] as const) {
    if (key in update) {
      (changed as Record<string, unknown>)[key] = update[key];
    }
  }
  const tasks = plan.tasks.slice();
  tasks[index] = { ...tasks[index], ...changed };
  return { ...plan, tasks };
}

/** Fold events into a plan, in order. */
export function applyPlanEvents(plan: PlanSnapshot | null, events: readonly PlannerEvent[]): PlanSnapshot | null {
  return events.reduce(applyPlanEvent, plan);
}

/** The tasks that count: those not re-planned away. */
export function liveTasks(plan: PlanSnapshot): PlanTask[] {
  return plan.tasks.filter(t => !t.replaced);
}

export interface Progress {
  /** Tasks done or skipped. */
  done: number;
  /** Tasks finished in any way (done, failed, skipped, cancelled). */
  finished: number;
  running: number;
  total: number;
  /** 0..1 of the tasks finished. */
  fraction: number;
}

export function progress(plan: PlanSnapshot): Progress {
  const tasks = liveTasks(plan);
  const done = tasks.filter(t => t.state === 'done' || t.state === 'skipped').length;
  const finished = tasks.filter(t => FINISHED.includes(t.state)).length;
  const running = tasks.filter(t => t.state === 'running').length;
  return { done, finished, running, total: tasks.length, fraction: tasks.length ? finished / tasks.length : 0 };
}

/** The controls of the whole plan that apply in its status. */
export interface PlanControls {
  approve: boolean;
  edit: boolean;
  pause: boolean;
  resume: boolean;
  cancel: boolean;
}

export function planControls(plan: PlanSnapshot | null): PlanControls {
  const status = plan?.status;
  const editable = !!plan && liveTasks(plan).some(t => t.state === 'pending' || t.state === 'ready');
  return {
    approve: status === 'awaiting_approval',
    edit: (status === 'awaiting_approval' || status === 'running' || status === 'paused') && editable,
    pause: status === 'running',
    resume: status === 'paused' || (!!status && RESUMABLE.includes(status)),
    cancel: !!status && LIVE.includes(status) && status !== 'draft'
  };
}

/** The controls of one task that apply in its state and its plan's status. */
export interface TaskControls {
  retry: boolean;
  skip: boolean;
  cancel: boolean;
}

export function taskControls(plan: PlanSnapshot, task: PlanTask): TaskControls {
  const live = LIVE.includes(plan.status) && plan.status !== 'draft';
  const reopenable = task.state === 'failed' || task.state === 'cancelled' || task.state === 'skipped';
  const open = !task.replaced && !FINISHED.includes(task.state);
  return {
    retry: !task.replaced && reopenable && (live || RESUMABLE.includes(plan.status)),
    skip: live && open,
    cancel: live && open
  };
}

/** Whether a person may still change a task in `plan_edit`: it has not started. */
export function isEditable(task: PlanTask): boolean {
  return !task.replaced && (task.state === 'pending' || task.state === 'ready');
}

/**
 * A task's transcript, folded like the chat's conversation: its turns' tokens become text and its tool
 * calls cards with their results. Several attempts follow each other.
 */
export function transcriptOf(events: readonly PlannerEvent[], taskId: string): ConversationState {
  const own = events
    .filter(e => e.task === taskId && e.type !== 'task_update')
    .map(e => {
      const { task: _task, ...rest } = e;
      return rest as unknown as AgentEvent;
    });
  return foldEvents(EMPTY_CONVERSATION, own);
}

/**
 * The calls of the running tasks that wait for a person's approval, by task id (only tasks with some): asked
 * in the task's current attempt and not answered yet. (Task ids repeat from plan to plan, so only events
 * since the attempt started count.)
 */
export function pendingApprovals(
  events: readonly PlannerEvent[],
  tasks: readonly PlanTask[]
): ReadonlyMap<string, readonly PendingApproval[]> {
  const running = new Map(tasks.filter(t => t.state === 'running' && !t.replaced).map(t => [t.id, t]));
  const asked = events.filter(e => {
    const task = running.get(e.task ?? '');
    const current = !!task && e.attempt === task.attempt && task.started !== null && e.ts >= task.started;
    return current && (e.type === 'approval_request' || e.type === 'approval_result');
  });
  const pending = new Map<string, readonly PendingApproval[]>();
  for (const id of new Set(asked.map(e => e.task as string))) {
    const approvals = transcriptOf(asked, id).approvals;
    if (approvals.length) {
      pending.set(id, approvals);
    }
  }
  return pending;
}

/** Seconds as a short duration: "45 s", "2 min 5 s", "1 h 3 min". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    const rest = s % 60;
    return `${Math.floor(s / 60)} min${rest ? ` ${rest} s` : ''}`;
  }
  const minutes = Math.round((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${minutes ? ` ${minutes} min` : ''}`;
}

/** How long a task took (finished), or has taken so far (running); null before it starts. */
export function elapsedSeconds(task: PlanTask, now: number): number | null {
  if (task.actual_s !== null && task.actual_s !== undefined) {
    return task.actual_s;
  }
  if (task.state === 'running' && task.started) {
    return Math.max(0, now - task.started);
  }
  return null;
}

/** "est 30 s · took 12 s" (or "· 8 s so far" while it runs). */
export function estimateText(task: PlanTask, now: number): string {
  const estimate = `est ${formatSeconds(task.estimate_s)}`;
  const elapsed = elapsedSeconds(task, now);
  if (elapsed === null) {
    return estimate;
  }
  return task.state === 'running' && task.actual_s === null
    ? `${estimate} · ${formatSeconds(elapsed)} so far`
    : `${estimate} · took ${formatSeconds(elapsed)}`;
}

/** When the plan should end, relative to now and as a clock time; empty when unknown or over. */
export function expectedFinishText(plan: PlanSnapshot, now: number): string {
  if (plan.expected_finish === null || plan.expected_finish === undefined) {
    return plan.status === 'done' ? '' : 'unknown';
  }
  if (plan.status === 'done' || plan.status === 'failed' || plan.status === 'cancelled') {
    return '';
  }
  const clock = new Date(plan.expected_finish * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const left = plan.expected_finish - now;
  return left > 0 ? `in ${formatSeconds(left)} (${clock})` : `any moment (${clock})`;
}

export const STATUS_LABEL: Record<PlanStatus, string> = {
  draft: 'planning…',
  awaiting_approval: 'waiting for approval',
  running: 'running',
  paused: 'paused',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
  interrupted: 'interrupted'
};
