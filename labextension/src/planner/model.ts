/**
 * PlannerModel: the plan of the session the chat shows, kept live. It loads the plan with
 * `GET .../plan` (and the session's earlier task events, for transcripts) and then follows the
 * events the client already receives on that session's socket; controls go out on the same socket.
 * No React.
 */
import { AgentApiError } from '../api';
import { IAgentClient, ISessionError, ISessionEvents } from '../client';
import { ConversationState, PendingApproval } from '../conversation';
import { SessionPanelModel } from '../panelModel';
import { ApprovalDecision, ClientFrame } from '../protocol';
import { applyPlanEvents, pendingApprovals, transcriptOf } from './planState';
import { PlanEditBody, PlannerEvent, PlanSnapshot, TaskAction } from './protocol';

export interface PlannerState {
  sessionId: string | null;
  plan: PlanSnapshot | null;
  /** True until the plan of a newly followed session has loaded. */
  loading: boolean;
  /** What went wrong last (a refused control, a failed load), until dismissed. */
  error: string | null;
  /** Logged events of the plan's tasks (they carry `task`), in order. */
  taskEvents: readonly PlannerEvent[];
}

/** Errors the server sends within this long after a control are shown as the control's answer. */
const ANSWER_WINDOW_MS = 5000;
const EVENTS_PAGE = 5000;

const EMPTY: PlannerState = { sessionId: null, plan: null, loading: false, error: null, taskEvents: [] };

export class PlannerModel extends SessionPanelModel<PlannerState> {
  constructor(private readonly _client: IAgentClient) {
    super(EMPTY);
    _client.events.connect(this._onEvents, this);
    _client.errors.connect(this._onError, this);
  }

  approve(): boolean {
    return this._send({ type: 'plan_approve' });
  }

  edit(plan: PlanEditBody): boolean {
    return this._send({ type: 'plan_edit', plan });
  }

  /** Pause, resume or cancel the plan (no task), or retry, skip or cancel one task. */
  control(action: TaskAction, taskId?: string): boolean {
    return this._send({ type: 'task_control', action, ...(taskId ? { task_id: taskId } : {}) });
  }

  /** Answer a task's approval request (as the chat's approval card does). */
  decide(callId: string, decision: ApprovalDecision): boolean {
    return this._send({ type: 'approve', call_id: callId, decision });
  }

  /** The calls of the plan's tasks waiting for a person's approval, by task id (cached like transcripts). */
  approvals(): ReadonlyMap<string, readonly PendingApproval[]> {
    const { taskEvents, plan } = this.state;
    if (this._approvals?.events !== taskEvents || this._approvals.plan !== plan) {
      this._approvals = { events: taskEvents, plan, pending: pendingApprovals(taskEvents, plan?.tasks ?? []) };
    }
    return this._approvals.pending;
  }

  /** A task's transcript, folded like the chat's conversation (cached until more events arrive). */
  transcript(taskId: string): ConversationState {
    const events = this.state.taskEvents;
    const cached = this._transcripts.get(taskId);
    if (cached && cached.events === events) {
      return cached.state;
    }
    const state = transcriptOf(events, taskId);
    this._transcripts.set(taskId, { events, state });
    return state;
  }

  protected follow(sessionId: string | null): void {
    this._load++;
    this._buffer = [];
    this._transcripts.clear();
    this.update({ ...EMPTY, sessionId, loading: sessionId !== null });
    if (sessionId) {
      void this._fetch(sessionId, this._load);
    }
  }

  protected onDispose(): void {
    this._load++;
  }

  private async _fetch(sessionId: string, load: number): Promise<void> {
    const api = this._client.api;
    let plan: PlanSnapshot | null = null;
    let history: PlannerEvent[] = [];
    let error: string | null = null;
    try {
      [plan, history] = await Promise.all([
        api.request<PlanSnapshot>(`sessions/${encodeURIComponent(sessionId)}/plan`).catch(reason => {
          if (reason instanceof AgentApiError && reason.status === 404) {
            return null; // the session has no plan (yet)
          }
          throw reason;
        }),
        this._history(sessionId)
      ]);
    } catch (reason) {
      error = `Could not load the plan: ${reason instanceof Error ? reason.message : String(reason)}`;
    }
    if (load !== this._load || this.isDisposed) {
      return; // another session was chosen meanwhile
    }
    const lastSeq = history.length ? history[history.length - 1].seq : 0;
    const live = this._buffer.filter(e => e.seq > lastSeq);
    // Plan events sent while the plan was being fetched may be older than it: keep only later ones.
    const since = plan?.updated ?? 0;
    plan = applyPlanEvents(plan, this._buffer.filter(e => (e.ts ?? 0) >= since));
    this._buffer = [];
    this.update({
      plan,
      loading: false,
      error,
      taskEvents: [...history, ...live].filter(isTaskEvent)
    });
  }

  /** Every logged event of the session so far, page by page. */
  private async _history(sessionId: string): Promise<PlannerEvent[]> {
    const events: PlannerEvent[] = [];
    let after = 0;
    for (;;) {
      const page = await this._client.api.events(sessionId, after, EVENTS_PAGE);
      events.push(...(page.events as unknown as PlannerEvent[]));
      if (page.events.length < EVENTS_PAGE) {
        return events;
      }
      after = page.events[page.events.length - 1].seq;
    }
  }

  private _onEvents(_: IAgentClient, { sessionId, events }: ISessionEvents): void {
    if (sessionId !== this.state.sessionId) {
      return;
    }
    const incoming = events as unknown as PlannerEvent[];
    if (this.state.loading) {
      this._buffer.push(...incoming);
      return;
    }
    const plan = applyPlanEvents(this.state.plan, incoming);
    const fresh = incoming.filter(isTaskEvent);
    const taskEvents = fresh.length ? [...this.state.taskEvents, ...fresh] : this.state.taskEvents;
    if (plan !== this.state.plan || taskEvents !== this.state.taskEvents) {
      this.update({ plan, taskEvents });
    }
  }

  private _onError(_: IAgentClient, { sessionId, error }: ISessionError): void {
    const answering = performance.now() - this._sentAt < ANSWER_WINDOW_MS;
    if (answering && (sessionId === null || sessionId === this.state.sessionId)) {
      this.update({ error: error.message });
    }
  }

  private _send(frame: ClientFrame): boolean {
    const id = this.state.sessionId;
    if (!id) {
      this.update({ error: 'No chat session is open: open the agent chat first.' });
      return false;
    }
    if (!this._client.send(id, frame)) {
      this.update({ error: 'Not connected to the agent, so nothing was sent. Try again in a moment.' });
      return false;
    }
    this._sentAt = performance.now();
    if (this.state.error) {
      this.update({ error: null });
    }
    return true;
  }

  /** Live events that arrived while the plan was loading. */
  private _buffer: PlannerEvent[] = [];
  /** Bumped for every load: a load that finishes after another began is dropped. */
  private _load = 0;
  private _sentAt = -Infinity;
  private _transcripts = new Map<string, { events: readonly PlannerEvent[]; state: ConversationState }>();
  private _approvals: {
    events: readonly PlannerEvent[];
    plan: PlanSnapshot | null;
    pending: ReadonlyMap<string, readonly PendingApproval[]>;
  } | null = null;
}

/** Events of a task's turn worth keeping for its transcript. */
function isTaskEvent(event: PlannerEvent): boolean {
  return typeof event.task === 'string' && event.type !== 'task_update';
}
