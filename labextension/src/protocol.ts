/**
 * Types of the jupyter-agent wire protocol, version 1 (see docs/protocol.md).
 *
 * These mirror the server's JSON exactly (snake_case included) so frames can be
 * passed through without translation.
 */

import type { PlanEditBody, TaskAction } from './planner/protocol';

export const PROTOCOL_VERSION = 1;

/** Epoch seconds. */
export type Timestamp = number;

/** A conversation with the agent, shared by everyone who opens it. */
export interface Session {
  id: string;
  title: string;
  created: Timestamp;
  updated: Timestamp;
  last_seq: number;
  running: boolean;
  owner: string;
  /** Seen by the collaborators of its notebook, not only its owner. */
  shared?: boolean;
  /** Another process (a kernel, a CLI run) writes this session: shown live, no prompts from here. */
  read_only?: boolean;
  /** Why it is read-only, for people (which process runs it). */
  read_only_reason?: string;
  /** "review": the agent's notebook edits wait as pending cells until accepted or rejected. */
  edit_mode?: EditMode;
}

export type EditMode = 'live' | 'review';

/** `GET /api/agent/health`. */
export interface Health {
  status: string;
  version: string;
  model: string;
  models: string[];
  llm_ready: boolean;
  /** The embedded offline model, when the server runs one (no hosted model configured). */
  local_model?: LocalModelStatus | null;
  /** Sessions are private to their owner unless shared (the server tells people apart). */
  private_sessions?: boolean;
  /** The MCP servers of `c.JupyterAgent.mcp_servers`, by name. */
  mcp_servers?: Record<string, McpServerHealth>;
}

/** One MCP server the agent takes tools from (`mcp_servers` of the health answer). */
export interface McpServerHealth {
  transport: string;
  state: 'starting' | 'ready' | 'failed' | 'stopped';
  error: string | null;
  tools: string[];
}

export type LocalModelState = 'starting' | 'ready' | 'failed' | 'not_installed' | 'stopped';

/** `local_model` of the health answer (the server's `LocalModelServer.status()`). */
export interface LocalModelStatus {
  /** The short name, e.g. `qwen2.5-coder-1.5b`; prompts pick it as model `local/<name>`. */
  name: string;
  /** The full name of the weights, e.g. `Qwen2.5-Coder-1.5B-Instruct Q4_K_M`. */
  title: string;
  state: LocalModelState;
  ready: boolean;
  /** Why it is not installed or failed, in a sentence that names the fix (e.g. the pip command). */
  error: string | null;
  /** When not installed: the command that installs what is missing (older servers: absent). */
  install_command?: string | null;
  startup_seconds: number | null;
  threads: number;
  n_ctx: number;
}

/** `GET /api/agent/tools` entry. */
export interface ToolInfo {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  policy: string;
  stats: { calls: number; errors: number; p50_ms: number | null; p95_ms: number | null };
}

/** Error body of a failed REST call. */
export interface ErrorBody {
  code: string;
  message: string;
}

/** The person who sent a message, when the server knows it. */
export interface UserInfo {
  username: string;
  display_name?: string;
}

/** What a request acts on. */
export interface PromptContext {
  notebook?: string;
  /** `@` mentions of the notebook's variables and cells; the server adds `label` and `summary` at send time. */
  attachments?: Attachment[];
}

/** A variable of the notebook's kernel or one of its cells, attached to a prompt. */
export type Attachment = ({ kind: 'variable'; name: string } | { kind: 'cell'; id: string }) & {
  /** As the chat shows it, e.g. `@df` or `@cell-3` (set by the server). */
  label?: string;
  /** What the model read of it (set by the server). */
  summary?: string;
};

/** One variable of a kernel, as `GET /api/agent/variables` summarises it. */
export interface VariableSummary {
  name: string;
  /** e.g. `pandas.DataFrame`, `list`, `class`, `function`. */
  type: string;
  /** A short phrase: `3 rows × 2 columns`, `10000000 items`, `3 × 4`. */
  size?: string;
  shape?: number[];
  dtype?: string;
  /** [name, dtype] of the first columns of a table. */
  columns?: [string, string][];
  bytes?: number;
  /** A short value, or a table's first rows. */
  preview?: string;
  /** Why it was not described further (e.g. looking at it took too long). */
  note?: string;
}

/** `GET /api/agent/variables?notebook=<path>`. */
export interface VariablesAnswer {
  path: string;
  /** `none`: the notebook's kernel is not running (so there are no variables). */
  kernel: 'running' | 'none';
  variables: VariableSummary[];
  /** Variables left out of the listing. */
  more: number;
  missing: string[];
}

export interface ToolCallRequest {
  id: string;
  name: string;
  arguments: unknown;
}

export interface ImageData {
  mime: string;
  data: string;
}

export interface UsageFields {
  model?: string;
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  cost?: number | null;
  latency_ms?: number;
  ttft_ms?: number | null;
}

/** Fields every logged event carries. */
interface Logged<T extends string> {
  type: T;
  session: string;
  seq: number;
  ts: Timestamp;
  /** The turn id, on events that belong to a turn. */
  turn?: string;
}

export interface MessageEvent extends Logged<'message'> {
  role: 'user' | 'assistant';
  content: string;
  tool_calls?: ToolCallRequest[];
  user?: UserInfo;
  context?: PromptContext;
}
export interface TokenEvent extends Logged<'token'> {
  text: string;
}
export interface ThinkingEvent extends Logged<'thinking'> {
  text: string;
}
export interface ToolCallEvent extends Logged<'tool_call'> {
  call_id: string;
  name: string;
  /** An object, or the raw string when the model's JSON was invalid. */
  arguments: unknown;
}
export interface ToolStatusEvent extends Logged<'tool_status'> {
  call_id: string;
  status: 'running' | 'waiting_approval';
}
export interface ApprovalRequestEvent extends Logged<'approval_request'> {
  call_id: string;
  name: string;
  arguments: unknown;
  reason: string;
}
export type ApprovalDecision = 'once' | 'always' | 'deny';
export interface ApprovalResultEvent extends Logged<'approval_result'> {
  call_id: string;
  decision: ApprovalDecision | 'timeout';
  user?: UserInfo;
}
export interface ToolResultEvent extends Logged<'tool_result'> {
  call_id: string;
  name: string;
  ok: boolean;
  content: unknown;
  data?: Record<string, unknown> | null;
  images?: ImageData[];
  duration_ms?: number;
}
export interface UsageEvent extends Logged<'usage'>, UsageFields {}
export interface ErrorEvent extends Logged<'error'> {
  code: string;
  message: string;
}
export interface DoneEvent extends Logged<'done'> {
  reason: 'completed' | 'cancelled' | 'max_steps' | string;
  usage?: UsageFields;
}
export interface SessionEvent extends Logged<'session'> {
  /** Absent when only the edit mode changed. */
  title?: string;
  edit_mode?: EditMode;
}

/** One target's change: a cell (`cell:<path>:<cell_id>`) or a file (`file:<path>`). */
export interface Change {
  key: string;
  target: 'cell' | 'file';
  op: ChangeOp;
  path: string;
  cell_id?: string;
  cell_type?: string;
  added: number;
  removed: number;
  /** Waits for accept or reject (review mode). */
  pending: boolean;
}
export type ChangeOp = 'insert' | 'edit' | 'delete' | 'outputs' | 'write' | 'create';
/** A tool of the turn changed a notebook or file; the same key may come several times in a turn. */
export interface ChangeEvent extends Logged<'change'> {
  turn: string;
  call_id: string;
  change: Change;
}

export type ReviewState = 'applied' | 'undone' | 'pending' | 'accepted' | 'rejected' | 'partial';
export type ReviewAction = 'undo' | 'redo' | 'accept' | 'reject' | 'resolve';
/** A target someone changed after the turn: taking the turn back needs a person's choice. */
export interface Conflict {
  key: string;
  path: string;
  cell_id?: string;
  message: string;
  /** Their current text. */
  theirs: string;
  /** What the undo wanted to put back. */
  turns: string;
}
export interface Skipped {
  key: string;
  message: string;
}
/** After an undo, redo, accept, reject or conflict resolution of the turn `turn` (a finished one). */
export interface TurnReviewEvent extends Logged<'turn_review'> {
  turn: string;
  action: ReviewAction;
  state: ReviewState;
  user: UserInfo | null;
  reverted: string[];
  /** The conflicts still unresolved after this action. */
  conflicts: Conflict[];
  skipped: Skipped[];
  /** The cells acted on, when not the whole turn. */
  cells?: string[];
}
/** What the turn is doing now, in words; a new one replaces the last (see docs/protocol.md). */
export interface ActivityEvent extends Logged<'activity'> {
  /** starting | prompt | thinking | writing | calling | tools | approval | retry */
  phase: string;
  /** e.g. "reading your request (prompt 1,870 tokens, 45%)", "step 2: running notebook_run_cell". */
  text: string;
  /** The model call of the turn, from 1. */
  step: number;
  /** When this phase began (epoch seconds, the server's clock). */
  started: Timestamp;
  prompt_tokens: number | null;
  /** 0..1 of the prompt the model has read, where its server says so. */
  progress: number | null;
  /** Set on a plan task's own turn. */
  task?: string;
}
/** What was hidden during a turn (sent just before its end when anything was): counts by kind, never values. */
export interface RedactionEvent extends Logged<'redaction'> {
  /** Distinct values hidden, by kind: `aws_access_key`, `api_key`, `secret_keyword`, `email`, `card`, ... */
  counts: Record<string, number>;
  total: number;
}
/** The conversation before a turn was summarised to fit the model's context window (the full log is kept). */
export interface CompactionEvent extends Logged<'compaction'> {
  summary: string;
  /** Messages the summary stands for. */
  messages: number;
  tokens_before: number;
  tokens_after: number;
  /** True when the model could not summarise and a plain list of the requests and answers was kept. */
  fallback: boolean;
}
/** Event types this client does not fold (e.g. `plan`, `task_update`); kept for other features. */
export interface OtherEvent extends Logged<string> {
  [key: string]: unknown;
}

export type AgentEvent =
  | MessageEvent
  | TokenEvent
  | ThinkingEvent
  | ToolCallEvent
  | ToolStatusEvent
  | ApprovalRequestEvent
  | ApprovalResultEvent
  | ToolResultEvent
  | UsageEvent
  | ErrorEvent
  | DoneEvent
  | SessionEvent
  | ActivityEvent
  | RedactionEvent
  | CompactionEvent
  | ChangeEvent
  | TurnReviewEvent;

/** One target of `GET .../turns/{turn}/changes`: the turn's net change to it. */
export interface TurnTarget extends Change {
  index?: number;
  /** Unified diff; may be "". */
  diff: string;
  outputs?: { before: number; after: number };
  /** Plan tasks that changed it. */
  tasks: string[];
}

/** `GET /api/agent/sessions/{id}/turns/{turn}/changes`. */
export interface TurnChanges {
  session: string;
  turn: string;
  state: ReviewState;
  edit_mode: EditMode;
  totals: { cells: number; files: number; added: number; removed: number };
  targets: TurnTarget[];
  conflicts: Conflict[];
}

/** The answer of `POST .../undo`, `.../redo` and `.../review`. */
export interface ReviewAnswer {
  state: ReviewState;
  reverted?: string[];
  accepted?: string[];
  conflicts?: Conflict[];
  skipped?: Skipped[];
}

/** How an undo settles each conflict: keep the person's text, or take the turn's change back over it. */
export type Resolution = Record<string, 'keep' | 'revert'>;

/** `GET /api/agent/sessions/{id}/events`. */
export interface EventsPage {
  events: AgentEvent[];
  last_seq: number;
}

/** Frames the server sends without `seq` (not part of the log). */
export interface HelloFrame {
  type: 'hello';
  session: string;
  protocol: number;
  last_seq: number;
}
/** Sent when this server starts writing a session another process ran (that process ended). */
export interface AccessFrame {
  type: 'access';
  session: string;
  read_only: boolean;
  message?: string;
}
export interface PongFrame {
  type: 'pong';
  id?: unknown;
}
/** e.g. `bad_message`: not part of any turn, the connection stays open. */
export interface TransientErrorFrame {
  type: 'error';
  code: string;
  message: string;
}

/** Client to server frames. */
export type ClientFrame =
  | { type: 'prompt'; text: string; context: PromptContext; model?: string; plan?: boolean; auto?: boolean }
  | { type: 'cancel' }
  | { type: 'approve'; call_id: string; decision: ApprovalDecision }
  | { type: 'plan_approve' }
  | { type: 'plan_edit'; plan: PlanEditBody }
  | { type: 'task_control'; action: TaskAction; task_id?: string }
  | { type: 'ping'; id?: unknown };

/** True for frames that belong to the session's event log. */
export function isLoggedEvent(frame: unknown): frame is AgentEvent {
  const f = frame as { seq?: unknown; type?: unknown } | null;
  return !!f && typeof f.type === 'string' && typeof f.seq === 'number';
}
