/**
 * Folds a session's events into the conversation view-model (see viewModel.ts).
 *
 * `foldEvent(state, event)` never mutates `state`; an event whose `seq` is not after
 * `state.lastSeq` is ignored, so replaying a log (or part of it) twice gives the same state.
 */
import { AgentEvent, ApprovalRequestEvent } from './protocol';
import { errorHint } from './hints';
import { foldReviewEvent } from './review';
import { addUsage, mergeTotals } from './usage';
import {
  Activity,
  ChatItem,
  ConversationState,
  MessageItem,
  PendingApproval,
  PlanItem,
  ToolCard,
  ToolItem,
  ToolStatus
} from './viewModel';

export * from './viewModel';

/** Fold a list of events, in order. */
export function foldEvents(state: ConversationState, events: readonly AgentEvent[]): ConversationState {
  return events.reduce(foldEvent, state);
}

/** Fold one event into the state; returns `state` itself when the event changes nothing. */
export function foldEvent(state: ConversationState, event: AgentEvent): ConversationState {
  if (typeof event.seq !== 'number' || event.seq <= state.lastSeq) {
    return state;
  }
  const s: ConversationState = { ...state, lastSeq: event.seq };
  if (event.type === 'change' || event.type === 'turn_review') {
    // Before the turn bookkeeping: a turn_review acts on a finished turn, and a plan task's changes are its turn's.
    return { ...s, reviews: foldReviewEvent(s.reviews, event) };
  }
  const type: string = event.type;
  if (type === 'plan' || type === 'task_update') {
    return planActivity(foldPlan(s, event as unknown as PlanFields), event);
  }
  const task = (event as { task?: unknown }).task;
  if (typeof task === 'string') {
    return foldTaskEvent(s, event, task); // a plan task's own turn: the planner shows it, bar its approvals
  }
  const turn = event.turn;
  if (turn && !isTerminal(event)) {
    s.running = true;
    s.turn = turn;
  }
  switch (event.type) {
    case 'message':
      if (event.role === 'user') {
        s.draft = null;
        s.running = true;
        s.turn = turn ?? s.turn;
        s.activity = s.activity ?? waiting(event.ts, turn, (event as { plan?: unknown }).plan === true);
        return append(s, {
          kind: 'message',
          key: `m${event.seq}`,
          role: 'user',
          text: event.content ?? '',
          thinking: '',
          streaming: false,
          user: event.user,
          context: event.context,
          turn
        });
      }
      return withToolCalls(finishAssistant(s, event.seq, event.content ?? '', turn), event);
    case 'token':
      return updateDraft(s, event.seq, turn, m => ({ ...m, text: m.text + event.text }));
    case 'thinking':
      return updateDraft(s, event.seq, turn, m => ({ ...m, thinking: m.thinking + event.text }));
    case 'tool_call':
      return upsertCard(s, event.call_id, event.name, turn, c => ({ ...c, arguments: event.arguments }));
    case 'tool_status':
      return upsertCard(s, event.call_id, '', turn, c => ({ ...c, status: event.status }));
    case 'approval_request':
      s.approvals = withApproval(s.approvals, event);
      return upsertCard(s, event.call_id, event.name, turn, c => ({
        ...c,
        arguments: event.arguments,
        status: 'waiting_approval'
      }));
    case 'approval_result': {
      s.approvals = s.approvals.filter(a => a.callId !== event.call_id);
      const refused = event.decision === 'deny' || event.decision === 'timeout';
      return upsertCard(s, event.call_id, '', turn, c => ({
        ...c,
        approval: event.decision,
        approvalUser: event.user,
        status: refused ? 'error' : 'running',
        summary: refused ? (event.decision === 'deny' ? 'Denied.' : 'Approval timed out.') : c.summary
      }));
    }
    case 'tool_result':
      return upsertCard(s, event.call_id, event.name, turn, c => {
        const data = event.data && typeof event.data === 'object' ? event.data : {};
        return {
          ...c,
          status: event.ok ? 'done' : 'error',
          ok: event.ok,
          content: event.content,
          summary: summarize(event.content),
          data,
          images: event.images ?? [],
          durationMs: event.duration_ms,
          cellId: stringField(data, 'cell_id') ?? c.cellId,
          path: stringField(data, 'path') ?? c.path
        };
      });
    case 'usage': {
      const key = turn ?? `seq${event.seq}`;
      s.usage = { ...s.usage, [key]: addUsage(s.usage[key] ?? null, event) };
      return s;
    }
    case 'error':
      return endTurn(append(s, {
        kind: 'error',
        key: `e${event.seq}`,
        code: event.code,
        message: event.message,
        hint: errorHint(event.code),
        turn
      }), turn, 'The turn ended with an error before this tool finished.');
    case 'done': {
      const accumulated = turn ? s.usage[turn] ?? null : null;
      const usage = event.usage ? mergeTotals(accumulated, event.usage) : accumulated;
      const ended = endTurn(s, turn, event.reason === 'cancelled' ? 'Cancelled.' : 'Did not finish.');
      return append(ended, { kind: 'turn_end', key: `d${event.seq}`, turn, reason: event.reason, usage });
    }
    case 'session':
      if (typeof event.title === 'string') {
        s.title = event.title;
      }
      if (event.edit_mode === 'live' || event.edit_mode === 'review') {
        s.editMode = event.edit_mode;
      }
      return s;
    case 'redaction':
      return append(s, {
        kind: 'redaction',
        key: `r${event.seq}`,
        turn,
        counts: event.counts ?? {},
        total: typeof event.total === 'number' ? event.total : 0
      });
    case 'compaction':
      return append(s, {
        kind: 'compaction',
        key: `k${event.seq}`,
        turn,
        summary: typeof event.summary === 'string' ? event.summary : '',
        messages: typeof event.messages === 'number' ? event.messages : 0,
        tokensBefore: typeof event.tokens_before === 'number' ? event.tokens_before : 0,
        tokensAfter: typeof event.tokens_after === 'number' ? event.tokens_after : 0,
        fallback: event.fallback === true
      });
    case 'activity':
      s.activity = {
        turn,
        phase: event.phase,
        text: event.text,
        step: typeof event.step === 'number' ? event.step : null,
        started: typeof event.started === 'number' ? event.started : event.ts,
        ts: event.ts,
        promptTokens: event.prompt_tokens ?? null,
        progress: event.progress ?? null
      };
      return s;
    default:
      return s; // other features' events only advance lastSeq
  }
}

/** The fields of `plan` and `task_update` events the plan card uses. */
interface PlanFields {
  type: 'plan' | 'task_update';
  seq: number;
  turn?: string;
  id: string;
  goal?: string;
  status?: string;
  state?: string;
  tasks?: { id: string; title?: string; state: string; replaced?: boolean }[];
}

/** Keep the plan's card current: a `plan` event adds or replaces it, a `task_update` changes one task. */
function foldPlan(s: ConversationState, event: PlanFields): ConversationState {
  if (typeof event.id !== 'string') {
    return s; // not a plan this client understands
  }
  let index = s.items.length - 1; // the latest plan's card: task ids repeat from plan to plan
  while (index >= 0 && !(s.items[index].kind === 'plan' && (event.type !== 'plan' || (s.items[index] as PlanItem).planId === event.id))) {
    index--;
  }
  const old = index >= 0 ? (s.items[index] as PlanItem) : null;
  if (event.type === 'task_update') {
    // A task that stopped running (done, failed, skipped, cancelled) no longer waits for an answer.
    const settled = event.state === 'running' ? s : { ...s, approvals: s.approvals.filter(a => a.task?.id !== event.id) };
    return old && event.state ? replaceItem(settled, index, { ...old, tasks: { ...old.tasks, [event.id]: event.state } }) : settled;
  }
  const tasks: Record<string, string> = {};
  const titles: Record<string, string> = {};
  (event.tasks ?? []).filter(t => !t.replaced).forEach(t => {
    tasks[t.id] = t.state;
    titles[t.id] = t.title ?? '';
  });
  const item: PlanItem = {
    kind: 'plan',
    key: old?.key ?? `p${event.seq}`,
    planId: event.id,
    goal: event.goal ?? '',
    status: event.status ?? '',
    tasks,
    titles,
    turn: event.turn
  };
  return old ? replaceItem(s, index, item) : append(s, item);
}

/** A plan task's events show in the planner; its approvals are asked in the chat too, naming the task. */
function foldTaskEvent(s: ConversationState, event: AgentEvent, task: string): ConversationState {
  if (event.type === 'approval_request') {
    const plan = s.items.find((i): i is PlanItem => i.kind === 'plan' && i.turn === event.turn);
    return { ...s, approvals: withApproval(s.approvals, event, { id: task, title: plan?.titles[task] ?? '' }) };
  }
  if (event.type === 'approval_result') {
    return { ...s, approvals: s.approvals.filter(a => a.callId !== event.call_id) };
  }
  return s;
}

/** The pending approvals with `event`'s call asking (once). */
function withApproval(
  approvals: readonly PendingApproval[],
  event: ApprovalRequestEvent,
  task?: PendingApproval['task']
): PendingApproval[] {
  const { call_id: callId, name, arguments: args, reason, turn } = event;
  return [...approvals.filter(a => a.callId !== callId), { callId, name, arguments: args, reason, turn, ...(task ? { task } : {}) }];
}

function isTerminal(event: AgentEvent): boolean {
  return event.type === 'done' || event.type === 'error';
}

function append(s: ConversationState, item: ChatItem): ConversationState {
  return { ...s, items: [...s.items, item] };
}

function replaceItem(s: ConversationState, index: number, item: ChatItem): ConversationState {
  const items = s.items.slice();
  items[index] = item;
  return { ...s, items };
}

function draftIndex(s: ConversationState): number {
  return s.draft === null ? -1 : s.items.findIndex(i => i.key === s.draft);
}

/** Apply `change` to the streaming assistant message, starting one if needed. */
function updateDraft(
  s: ConversationState,
  seq: number,
  turn: string | undefined,
  change: (m: MessageItem) => MessageItem
): ConversationState {
  const index = draftIndex(s);
  if (index >= 0) {
    return replaceItem(s, index, change(s.items[index] as MessageItem));
  }
  const key = `a${seq}`;
  const fresh: MessageItem = {
    kind: 'message', key, role: 'assistant', text: '', thinking: '', streaming: true, turn
  };
  return append({ ...s, draft: key }, change(fresh));
}

/** The assistant's complete message: it replaces the streamed draft (the server's text wins). */
function finishAssistant(
  s: ConversationState, seq: number, content: string, turn: string | undefined
): ConversationState {
  const index = draftIndex(s);
  const done = { ...s, draft: null };
  if (index >= 0) {
    const m = s.items[index] as MessageItem;
    return replaceItem(done, index, { ...m, text: content || m.text, streaming: false });
  }
  return append(done, {
    kind: 'message', key: `a${seq}`, role: 'assistant', text: content, thinking: '', streaming: false, turn
  });
}

function withToolCalls(s: ConversationState, event: Extract<AgentEvent, { type: 'message' }>): ConversationState {
  return (event.tool_calls ?? []).reduce(
    (acc, call) => upsertCard(acc, call.id, call.name, event.turn, c => c.arguments === undefined ? { ...c, arguments: call.arguments } : c),
    s
  );
}

/** Update the card of `callId`, creating it (status pending) at the end of the list if new. */
function upsertCard(
  s: ConversationState,
  callId: string,
  name: string,
  turn: string | undefined,
  change: (c: ToolCard) => ToolCard
): ConversationState {
  const index = s.items.findIndex(i => i.kind === 'tool' && i.card.callId === callId);
  if (index >= 0) {
    const old = (s.items[index] as ToolItem).card;
    const card = withLinks(change({ ...old, name: old.name || name }));
    return replaceItem(s, index, { kind: 'tool', key: `t${callId}`, card });
  }
  const base: ToolCard = { callId, name, arguments: undefined, status: 'pending', turn, data: {}, images: [] };
  return append({ ...s, draft: null }, { kind: 'tool', key: `t${callId}`, card: withLinks(change(base)) });
}

/** Fill `cellId`/`path` from the arguments until a result says otherwise. */
function withLinks(card: ToolCard): ToolCard {
  const args = card.arguments && typeof card.arguments === 'object' ? (card.arguments as Record<string, unknown>) : {};
  const cellId = card.cellId ?? stringField(args, 'cell_id');
  const path = card.path ?? stringField(args, 'path') ?? stringField(args, 'notebook');
  return cellId === card.cellId && path === card.path ? card : { ...card, cellId, path };
}

/** A turn ended: stop streaming, drop its approvals, fail the calls that never finished. */
function endTurn(s: ConversationState, turn: string | undefined, unfinished: string): ConversationState {
  const items = s.items.map(item => {
    if (item.kind === 'message' && item.streaming) {
      return { ...item, streaming: false };
    }
    if (item.kind === 'tool' && (turn === undefined || item.card.turn === turn) && !isFinished(item.card)) {
      return { ...item, card: { ...item.card, status: 'error' as ToolStatus, summary: unfinished } };
    }
    return item;
  });
  const approvals = s.approvals.filter(a => turn !== undefined && a.turn !== turn);
  const activity = turn !== undefined && s.activity?.turn !== turn ? s.activity : null;
  return { ...s, items, approvals, running: false, turn: null, draft: null, activity };
}

/** The activity shown from a prompt until its turn says what it does (a plan's turn says it with its plan). */
function waiting(ts: number, turn: string | undefined, plan: boolean): Activity {
  const [phase, text] = plan ? ['plan', 'making a plan'] : ['waiting', 'waiting for the agent'];
  return { turn, phase, text, step: null, started: ts, ts, promptTokens: null, progress: null };
}

const PLAN_ACTIVITY: Record<string, string> = {
  draft: 'making a plan',
  awaiting_approval: 'the plan waits for approval',
  running: 'running the plan',
  paused: 'the plan is paused'
};

/** A plan prompt's turn: its activity follows the plan (its tasks' own turns show in the planner). */
function planActivity(s: ConversationState, event: AgentEvent): ConversationState {
  const a = s.activity;
  const plan = [...s.items].reverse().find((i): i is PlanItem => i.kind === 'plan' && i.turn === event.turn);
  if (!a || a.phase !== 'plan' || a.turn !== event.turn || !plan || !(plan.status in PLAN_ACTIVITY)) {
    return s;
  }
  const states = Object.values(plan.tasks);
  const done = states.filter(t => t === 'done' || t === 'skipped').length;
  const text = PLAN_ACTIVITY[plan.status] + (plan.status === 'running' && states.length ? ` (${done} of ${states.length} tasks done)` : '');
  const started = PLAN_ACTIVITY[plan.status] === a.text.split(' (')[0] ? a.started : event.ts;
  return text === a.text ? s : { ...s, activity: { ...a, text, started, ts: event.ts } };
}

function isFinished(card: ToolCard): boolean {
  return card.status === 'done' || card.status === 'error';
}

function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  return typeof v === 'string' && v ? v : undefined;
}

/** A short, single-block text form of a tool result. */
export function summarize(content: unknown, max = 400): string {
  let text: string;
  if (typeof content === 'string') {
    text = content;
  } else if (content === undefined || content === null) {
    text = '';
  } else {
    try {
      text = JSON.stringify(content);
    } catch {
      text = String(content);
    }
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
