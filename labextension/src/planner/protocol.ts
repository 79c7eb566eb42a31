/**
 * The planner's part of the wire protocol (docs/protocol.md, "Planner"): the plan as the
 * server sends it in `plan` events and `GET .../plan`, its task updates, and the frames a person sends.
 */
export type PlanStatus =
  | 'draft'
  | 'awaiting_approval'
  | 'running'
  | 'paused'
  | 'done'
  | 'failed'
  | 'cancelled'
  | 'interrupted';

export type TaskState = 'pending' | 'ready' | 'running' | 'done' | 'failed' | 'skipped' | 'cancelled';

export const TASK_STATES: readonly TaskState[] = [
  'pending',
  'ready',
  'running',
  'done',
  'failed',
  'skipped',
  'cancelled'
];

/** One node of the plan's DAG with its run state. Times are epoch seconds, durations seconds. */
export interface PlanTask {
  id: string;
  title: string;
  description: string;
  depends_on: string[];
  tools: string[];
  notebooks: string[];
  estimate_s: number;
  model_estimate_s: number | null;
  acceptance: string;
  state: TaskState;
  started: number | null;
  finished: number | null;
  actual_s: number | null;
  summary: string;
  error: string;
  attempt: number;
  /** Failed and re-planned away: kept only to show what happened. */
  replaced: boolean;
}

/** The whole plan, as in a `plan` event (without the event's own fields) or `GET .../plan`. */
export interface PlanSnapshot {
  id: string;
  goal: string;
  status: PlanStatus;
  tasks: PlanTask[];
  critical_path: string[];
  critical_path_s: number;
  /** Epoch seconds, or null when it cannot be told (tasks wait on failed ones). */
  expected_finish: number | null;
  revision: number;
  replans: number;
  error: string;
  context: { notebook?: string };
  model: string | null;
  created: number;
  updated: number;
}

/** The fields of a `task_update` event. */
export interface TaskUpdate {
  id: string;
  task: string;
  state: TaskState;
  started: number | null;
  finished: number | null;
  estimate_s: number;
  actual_s: number | null;
  summary: string;
  attempt: number;
  error: string;
}

/** One task as a person sends it in `plan_edit` (only `id` and `title` are required). */
export interface EditedTask {
  id: string;
  title: string;
  description?: string;
  depends_on?: string[];
  tools?: string[];
  notebooks?: string[];
  estimate_s?: number | null;
  acceptance?: string;
}

/** The body of `plan_edit`: the whole edited task list. */
export interface PlanEditBody {
  goal?: string;
  tasks: EditedTask[];
}

export type TaskAction = 'pause' | 'resume' | 'cancel' | 'skip' | 'retry';

/** A logged event as the planner reads it: any type, maybe with the task (and attempt) it belongs to. */
export interface PlannerEvent {
  type: string;
  session: string;
  seq: number;
  ts: number;
  turn?: string;
  task?: string;
  attempt?: number;
  [field: string]: unknown;
}

/** Fields of the event envelope, not of the plan it carries. */
const ENVELOPE = new Set(['type', 'session', 'seq', 'ts', 'turn']);

/** The plan a `plan` event carries. */
export function planFromEvent(event: PlannerEvent): PlanSnapshot {
  const plan: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (!ENVELOPE.has(key)) {
      plan[key] = value;
    }
  }
  return plan as unknown as PlanSnapshot;
}
