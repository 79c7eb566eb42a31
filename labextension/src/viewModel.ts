/**
 * The conversation view-model: what the chat panel shows, built by `foldEvent`.
 */
import {
  ApprovalResultEvent,
  ChangeOp,
  Conflict,
  EditMode,
  ImageData,
  PromptContext,
  ReviewAction,
  ReviewState,
  Skipped,
  UserInfo
} from './protocol';

export type ToolStatus = 'pending' | 'waiting_approval' | 'running' | 'done' | 'error';

/** Everything known about one tool call; what tool renderers receive. */
export interface ToolCard {
  callId: string;
  name: string;
  arguments: unknown;
  status: ToolStatus;
  turn?: string;
  ok?: boolean;
  /** What the model read, as sent by the server. */
  content?: unknown;
  /** A short text form of `content` (or of why the call did not run). */
  summary?: string;
  data: Record<string, unknown>;
  images: ImageData[];
  durationMs?: number;
  approval?: ApprovalResultEvent['decision'];
  approvalUser?: UserInfo;
  /** Notebook cell and file the call acted on (from the result's data, else the arguments). */
  cellId?: string;
  path?: string;
}

export interface MessageItem {
  kind: 'message';
  key: string;
  role: 'user' | 'assistant';
  text: string;
  thinking: string;
  /** True while tokens are still arriving. */
  streaming: boolean;
  user?: UserInfo;
  context?: PromptContext;
  turn?: string;
}

export interface ToolItem {
  kind: 'tool';
  key: string;
  card: ToolCard;
}

export interface ErrorItem {
  kind: 'error';
  key: string;
  code: string;
  message: string;
  hint: string;
  turn?: string;
}

/** Tokens, cost and latency of one turn (summed over its model calls). */
export interface TurnUsage {
  model?: string;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cost: number | null;
  latencyMs: number;
  ttftMs: number | null;
  calls: number;
}

export interface TurnEndItem {
  kind: 'turn_end';
  key: string;
  turn?: string;
  reason: string;
  usage: TurnUsage | null;
}

/** A plan the agent made: one card per plan, kept current by its later `plan` and `task_update` events. */
export interface PlanItem {
  kind: 'plan';
  key: string;
  planId: string;
  goal: string;
  status: string;
  /** State of each task not re-planned away, by task id. */
  tasks: Readonly<Record<string, string>>;
  /** Title of each task not re-planned away, by task id. */
  titles: Readonly<Record<string, string>>;
  turn?: string;
}

/** What the server hid from the model, the logs and the audit log during a turn. */
export interface RedactionItem {
  kind: 'redaction';
  key: string;
  turn?: string;
  /** Distinct values hidden, by kind. */
  counts: Readonly<Record<string, number>>;
  total: number;
}

/** The earlier conversation was summarised for the model (shown where it happened). */
export interface CompactionItem {
  kind: 'compaction';
  key: string;
  turn?: string;
  summary: string;
  messages: number;
  tokensBefore: number;
  tokensAfter: number;
  fallback: boolean;
}

export type ChatItem = MessageItem | ToolItem | ErrorItem | TurnEndItem | PlanItem | RedactionItem | CompactionItem;

export interface PendingApproval {
  callId: string;
  name: string;
  arguments: unknown;
  reason: string;
  turn?: string;
  /** The plan task whose call this is (its id and, when known, its title); none for the chat's own turns. */
  task?: { id: string; title: string };
}

/** What the running turn is doing now (its last `activity` event), for the line under the conversation. */
export interface Activity {
  turn?: string;
  phase: string;
  text: string;
  step: number | null;
  /** When this phase began and when the server said so (epoch seconds, the server's clock). */
  started: number;
  ts: number;
  promptTokens: number | null;
  progress: number | null;
}

/** One cell or file a turn changed, shown once however many times the turn changed it. */
export interface ReviewTarget {
  key: string;
  target: 'cell' | 'file';
  op: ChangeOp;
  path: string;
  cellId?: string;
  cellType?: string;
  added: number;
  removed: number;
  /** Waits for accept or reject (review mode). */
  pending: boolean;
  /** Taken back by an undo or a reject. */
  reverted: boolean;
}

/** What a turn changed and what people did about it since (its `change` and `turn_review` events). */
export interface TurnReview {
  turn: string;
  /** In order of first change. */
  targets: readonly ReviewTarget[];
  state: ReviewState;
  /** The last review action and who took it; null until the first one. */
  action: ReviewAction | null;
  user: UserInfo | null;
  /** Conflicts still to resolve, one per key. */
  conflicts: readonly Conflict[];
  skipped: readonly Skipped[];
}

export interface ConversationState {
  lastSeq: number;
  title: string | null;
  items: readonly ChatItem[];
  /** Approvals still waiting for a decision, oldest first. */
  approvals: readonly PendingApproval[];
  running: boolean;
  /** Id of the turn in progress, if any. */
  turn: string | null;
  /** Key of the assistant message receiving tokens, if any. */
  draft: string | null;
  /** Running usage totals by turn id. */
  usage: Readonly<Record<string, TurnUsage>>;
  /** What the running turn is doing, until it ends. */
  activity: Activity | null;
  /** What each turn changed, by turn id (turns that changed nothing have none). */
  reviews: Readonly<Record<string, TurnReview>>;
  /** The session's edit mode as its last `session` event set it; null when none did. */
  editMode: EditMode | null;
}

export const EMPTY_CONVERSATION: ConversationState = Object.freeze({
  lastSeq: 0,
  title: null,
  items: [],
  approvals: [],
  running: false,
  turn: null,
  draft: null,
  usage: {},
  activity: null,
  reviews: {},
  editMode: null
});
