/**
 * AgentChat: the state behind the chat panel (sessions, chosen model and notebook,
 * input draft, voice input, local errors) and the actions the panel offers.
 * No React: the panel renders it and calls its methods.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { AgentApiError } from './api';
import { IAgentClient, ISessionError, ISessionEvents } from './client';
import { ChatSettings, ContextChoice, DEFAULT_SETTINGS, IAgentChat, LocalError, VoiceState } from './chatTypes';
import { ConnectionState, waitConnected } from './connection';
import { errorHint } from './hints';
import { LocalModelWatcher } from './localModel';
import { McpProblem, mcpProblems, mcpUnsettled } from './mcp';
import { CellInfo, MentionOption, cellOptions, variableOptions } from './mentions';
import { ChatModel } from './model';
import {
  ApprovalDecision,
  Attachment,
  EditMode,
  Resolution,
  ReviewAnswer,
  ReviewAction,
  Session,
  TurnChanges
} from './protocol';
import { VoiceError, VoiceRecorder } from './voice';

export * from './chatTypes';

/** How long after Stop to check whether the server still runs the turn. */
const CANCEL_CHECK_MS = 3000;
const HEALTH_RETRY_MS = 500; // while the server still loads the model library
const MCP_RETRY_MS = 15_000; // while an MCP server connects or retries

export class AgentChat implements IAgentChat, IDisposable {
  constructor(readonly client: IAgentClient) {
    client.events.connect(this._onEvents, this);
    client.errors.connect(this._onError, this);
    client.stateChanged.connect(this._emit, this);
    this.model.changed.connect(this._onModelChanged, this);
    this.localModel = new LocalModelWatcher({ fetchHealth: () => client.health() });
    this.localModel.changed.connect(this._emit, this);
  }

  readonly model = new ChatModel();
  /** The server's embedded offline model, polled while it is not ready. */
  readonly localModel: LocalModelWatcher;
  readonly voice = new VoiceRecorder();

  get changed(): ISignal<this, void> {
    return this._changed;
  }
  get focusRequested(): ISignal<this, void> {
    return this._focusRequested;
  }
  get plannerRequested(): ISignal<this, void> {
    return this._plannerRequested;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  sessions: Session[] = [];
  activeSessionId: string | null = null;
  models: string[] = [];
  /** The server's default model (from health). */
  serverModel = '';
  llmReady: boolean | null = null;
  /** Sessions are private to their owner until shared: the session bar offers sharing. */
  privateSessions = false;
  /** MCP servers whose tools are unavailable, with why (from health). */
  mcpProblems: McpProblem[] = [];
  private _mcpUnsettled = false;
  openNotebooks: string[] = [];
  activeNotebook: string | null = null;
  contextChoice: ContextChoice = { mode: 'active' };
  draft = '';
  /** Send the next prompt with `plan: true`: the agent plans it into tasks, to approve, first. */
  planFirst = false;
  /** Bumped when the draft is replaced from outside the input. */
  draftVersion = 0;
  errors: LocalError[] = [];
  voiceState: VoiceState = 'idle';
  settings: ChatSettings = DEFAULT_SETTINGS;
  /** What `@` offers for the context notebook: its kernel's variables, then its cells. */
  mentionOptions: MentionOption[] = [];
  /** Said under those options: loading, no kernel running, or why the variables are missing. */
  mentionNote: string | null = null;

  get connectionState(): ConnectionState {
    return this.client.state;
  }

  /** True from sending a prompt until its turn ends. */
  get running(): boolean {
    return this.model.state.running || this._awaitingTurn;
  }

  /** The notebook the next request acts on. */
  get contextNotebook(): string | null {
    const c = this.contextChoice;
    return c.mode === 'active' ? this.activeNotebook : c.mode === 'path' ? c.path : null;
  }

  /** Load models and sessions, and open the most recent session. */
  async start(): Promise<void> {
    await Promise.all([this.refreshHealth(), this.refreshSessions()]);
    if (!this.activeSessionId && this.sessions.length) {
      this.openSession(this.sessions[0].id);
    }
  }

  async refreshHealth(): Promise<void> {
    await this._guard(async () => {
      const health = await this.client.health();
      this.models = health.models ?? [];
      this.llmReady = health.llm_ready;
      this.privateSessions = !!health.private_sessions;
      this.serverModel = health.model ?? '';
      this.localModel.update(health);
      this.mcpProblems = mcpProblems(health);
      this._mcpUnsettled = mcpUnsettled(health);
    });
    // Right after the server starts, the model library is still loading: say so, and look again shortly.
    if (this.llmReady === false && this.serverModel && !this._disposed) {
      setTimeout(() => void this.refreshHealth(), HEALTH_RETRY_MS);
    } else if (this._mcpUnsettled && !this._disposed) {
      // MCP servers connect in the background (and failed ones retry): follow them until all are up.
      setTimeout(() => void this.refreshHealth(), MCP_RETRY_MS);
    }
  }

  async refreshSessions(): Promise<void> {
    await this._guard(async () => {
      this.sessions = await this.client.api.listSessions();
    });
  }

  openSession(id: string): void {
    if (id === this.activeSessionId) {
      return;
    }
    if (this.activeSessionId) {
      this.client.close(this.activeSessionId);
    }
    this.activeSessionId = id;
    this._awaitingTurn = false;
    this.model.reset();
    // A session another process ran becomes writable here once that process ends: show it at once.
    this.client.open(id).accessChanged.connect(() => void this.refreshSessions(), this);
    this._emit();
  }

  async newSession(title?: string): Promise<Session | null> {
    return this._guard(async () => {
      const session = await this.client.api.createSession(title);
      this.sessions = [session, ...this.sessions.filter(s => s.id !== session.id)];
      this.openSession(session.id);
      return session;
    });
  }

  async renameSession(id: string, title: string): Promise<void> {
    await this._guard(async () => {
      const session = await this.client.api.renameSession(id, title);
      this.sessions = this.sessions.map(s => (s.id === id ? session : s));
    });
  }

  async shareSession(id: string, shared: boolean): Promise<void> {
    await this._guard(async () => {
      const session = await this.client.api.shareSession(id, shared);
      this.sessions = this.sessions.map(s => (s.id === id ? session : s));
    });
  }

  /** Switch the active session between live edits and edits to review (pending cells). */
  async setEditMode(mode: EditMode): Promise<void> {
    const id = this.activeSessionId;
    if (id) {
      await this._guard(async () => {
        const session = await this.client.api.setEditMode(id, mode);
        this.sessions = this.sessions.map(s => (s.id === id ? session : s));
      });
    }
  }

  /** What a turn of the active session changed, with diffs; null (and an error shown) when the call failed. */
  async turnChanges(turn: string): Promise<TurnChanges | null> {
    const id = this.activeSessionId;
    return id ? this._guard(() => this.client.api.turnChanges(id, turn)) : null;
  }

  /** Take a turn's changes back; with `resolve`, settle the conflicts an undo left. */
  async undoTurn(turn: string, resolve?: Resolution): Promise<void> {
    await this._review(turn, resolve ? 'resolve' : 'undo', id => this.client.api.undoTurn(id, turn, resolve));
  }

  async redoTurn(turn: string): Promise<void> {
    await this._review(turn, 'redo', id => this.client.api.redoTurn(id, turn));
  }

  /** Accept or reject all the pending changes of a turn. */
  async reviewTurn(turn: string, action: 'accept' | 'reject'): Promise<void> {
    await this._review(turn, action, id => this.client.api.reviewTurn(id, turn, action));
  }

  async deleteSession(id: string): Promise<void> {
    await this._guard(async () => {
      await this.client.api.deleteSession(id);
      this.sessions = this.sessions.filter(s => s.id !== id);
      if (this.activeSessionId === id) {
        this.client.close(id);
        this.activeSessionId = null;
        this.model.reset();
        if (this.sessions.length) {
          this.openSession(this.sessions[0].id);
        }
      }
    });
  }

  /** Where the `@` menu reads a notebook's cells (the notebook tracker's view of it). */
  setCellSource(cells: (path: string) => CellInfo[]): void {
    this._cells = cells;
  }

  /** Load what `@` offers for the context notebook: its cells at once, its kernel's variables when they come. */
  async loadMentions(): Promise<void> {
    const path = this.contextNotebook;
    const load = ++this._mentionLoad;
    const cells = path && this._cells ? cellOptions(this._cells(path)) : [];
    if (!path) {
      this.mentionOptions = [];
      this.mentionNote = 'Choose a notebook above to attach its variables and cells.';
      this._emit();
      return;
    }
    this.mentionOptions = cells;
    this.mentionNote = 'Loading the kernel’s variables…';
    this._emit();
    let note: string | null = null;
    let variables: MentionOption[] = [];
    try {
      const answer = await this.client.api.variables(path);
      variables = variableOptions(answer);
      note = answer.kernel === 'none' ? 'The kernel is not running: no variables yet.' : null;
    } catch (error) {
      note = `No variables: ${error instanceof AgentApiError ? error.message : String(error)}`;
    }
    if (load === this._mentionLoad) {
      this.mentionOptions = [...variables, ...cells];
      this.mentionNote = note;
      this._emit();
    }
  }

  async send(text: string = this.draft, notebook?: string | null, attachments: Attachment[] = []): Promise<boolean> {
    const prompt = text.trim();
    if (!prompt) {
      return false;
    }
    const id = this.activeSessionId ?? (await this.newSession())?.id;
    if (!id) {
      return false;
    }
    const target = notebook === undefined ? this.contextNotebook : notebook;
    await waitConnected(this.client.open(id).stateChanged, () => this.client.open(id).state, 5000);
    const sent = this.client.send(id, {
      type: 'prompt',
      text: prompt,
      context: target ? { notebook: target, ...(attachments.length ? { attachments } : {}) } : {},
      ...(this.selectedModel ? { model: this.selectedModel } : {}),
      ...(this.planFirst ? { plan: true } : {})
    });
    if (!sent) {
      this.reportError('network', 'Not connected to the agent, so nothing was sent. Your text is still in the input.');
      return false;
    }
    if (text === this.draft) {
      this.draft = '';
    }
    this.planFirst = false; // one goal at a time is planned
    this._awaitingTurn = true;
    if (this.localModel.status && !this.localModel.status.ready) {
      void this.localModel.refresh(); // the turn (re)starts a failed or stopped model: show it starting
    }
    this._emit();
    return true;
  }

  /** Stop the running turn. If the server says nothing runs (a turn cut off by a restart), stop showing it. */
  cancel(): void {
    const id = this.activeSessionId;
    if (!id || !this.running) {
      return;
    }
    this.client.send(id, { type: 'cancel' });
    setTimeout(() => void this._settleIfIdle(id), CANCEL_CHECK_MS);
  }

  /** Send a decision on a tool call; false (and an error shown) when it could not be sent. */
  approve(callId: string, decision: ApprovalDecision): boolean {
    const id = this.activeSessionId;
    if (id && this.client.send(id, { type: 'approve', call_id: callId, decision })) {
      return true;
    }
    this.reportError('network', 'Not connected, so the decision was not sent. It is still waiting; try again.');
    return false;
  }

  /** Mic button: start recording, or stop and put the transcription in the input. */
  async toggleVoice(): Promise<void> {
    if (this.voiceState === 'transcribing') {
      return;
    }
    if (this.voiceState === 'idle') {
      try {
        await this.voice.start();
        this._setVoice('recording');
      } catch (error) {
        this.reportError('microphone', error instanceof VoiceError ? error.message : String(error));
      }
      return;
    }
    const audio = await this.voice.stop();
    this._setVoice('transcribing');
    try {
      const text = await this.client.api.transcribe(audio, this.settings.transcriptionModel || undefined);
      this.prefill(this.draft ? `${this.draft.trimEnd()} ${text}` : text);
    } catch (error) {
      const message =
        error instanceof AgentApiError && error.status === 404
          ? 'this Jupyter server does not offer speech to text (POST /api/agent/transcribe answered 404)'
          : error instanceof AgentApiError ? error.message : String(error);
      this.reportError('transcription', `Transcription failed: ${message}.`);
    } finally {
      this._setVoice('idle');
    }
  }

  /** The input's text as the user types it (no change notification: the input owns it). */
  setDraft(text: string): void {
    this.draft = text;
  }

  /** Replace the input's text from outside (commands, voice) and focus it. */
  prefill(text: string): void {
    this.draft = text;
    this.draftVersion++;
    this._emit();
    this._focusRequested.emit();
  }

  /** The model sent with prompts: the one picked here, else the settings' default, else the server's. */
  get selectedModel(): string {
    return this._pickedModel || this.settings.defaultModel || this.serverModel;
  }

  setModel(model: string): void {
    this._pickedModel = model;
    this._emit();
  }

  setPlanFirst(on: boolean): void {
    this.planFirst = on;
    this._emit();
  }

  openPlanner(): void {
    this._plannerRequested.emit();
  }

  setContext(choice: ContextChoice): void {
    this.contextChoice = choice;
    this._emit();
  }

  setNotebooks(open: string[], active: string | null): void {
    this.openNotebooks = open;
    this.activeNotebook = active;
    const c = this.contextChoice;
    if (c.mode === 'path' && !open.includes(c.path)) {
      this.contextChoice = { mode: 'active' };
    }
    this._emit();
  }

  updateSettings(settings: ChatSettings): void {
    this.settings = settings;
    this._emit();
  }

  reportError(code: string, message: string): void {
    this.errors = [...this.errors, { id: ++this._errorId, code, message, hint: errorHint(code) }];
    this._emit();
  }

  dismissError(id: number): void {
    this.errors = this.errors.filter(e => e.id !== id);
    this._emit();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.voice.cancel();
    this.model.dispose();
    this.localModel.dispose();
    Signal.clearData(this);
  }

  private _onEvents(_: IAgentClient, { sessionId, events }: ISessionEvents): void {
    if (sessionId === this.activeSessionId) {
      this._awaitingTurn = false;
      this.model.apply(events);
    }
  }

  private _onModelChanged(): void {
    const { title, editMode } = this.model.state;
    // A mode the log just set; an older one must not undo a session dict fetched since.
    const newMode = editMode !== this._loggedEditMode ? editMode : null;
    this._loggedEditMode = editMode;
    const active = this.sessions.find(s => s.id === this.activeSessionId);
    if (active && ((title && active.title !== title) || (newMode && active.edit_mode !== newMode))) {
      const changed = { ...active, title: title || active.title, edit_mode: newMode ?? active.edit_mode };
      this.sessions = this.sessions.map(s => (s === active ? changed : s));
    }
    this._emit();
  }

  /** Run a review call on `turn` of the active session and show its outcome without waiting for its event. */
  private async _review(turn: string, action: ReviewAction, call: (id: string) => Promise<ReviewAnswer>): Promise<void> {
    const id = this.activeSessionId;
    const answer = id ? await this._guard(() => call(id)) : null;
    if (answer && id === this.activeSessionId) {
      this.model.applyReview(turn, { ...answer, action });
    }
  }

  private _onError(_: IAgentClient, { sessionId, error }: ISessionError): void {
    if (sessionId === null || sessionId === this.activeSessionId) {
      this._awaitingTurn = false; // e.g. the prompt was refused: no turn will start
      this.reportError(error.code, error.message);
    }
  }

  private async _settleIfIdle(id: string): Promise<void> {
    if (id !== this.activeSessionId || !this.running) {
      return;
    }
    try {
      const session = await this.client.api.getSession(id);
      if (!session.running && id === this.activeSessionId) {
        this._awaitingTurn = false;
        this.model.markIdle();
      }
    } catch {
      // the connection state already tells the user the server is unreachable
    }
  }

  private _setVoice(state: VoiceState): void {
    this.voiceState = state;
    this._emit();
  }

  /** Run a server call; failures become a panel error and `null`. */
  private async _guard<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      const e = error instanceof AgentApiError ? error : new AgentApiError('agent_error', String(error));
      this.reportError(e.code, e.message);
      return null;
    } finally {
      this._emit();
    }
  }

  private _emit(): void {
    this._changed.emit();
  }

  private _cells: ((path: string) => CellInfo[]) | null = null;
  private _mentionLoad = 0;
  private _awaitingTurn = false;
  private _loggedEditMode: EditMode | null = null;
  private _pickedModel = '';
  private _errorId = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
  private _focusRequested = new Signal<this, void>(this);
  private _plannerRequested = new Signal<this, void>(this);
}
