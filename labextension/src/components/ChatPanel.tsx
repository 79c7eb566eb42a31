import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { ContextChoice, LocalError, VoiceState } from '../chat';
import { ConnectionState } from '../connection';
import { ConversationState } from '../conversation';
import { localModelNotice } from '../localModel';
import { McpProblem } from '../mcp';
import { MentionOption } from '../mentions';
import { ApprovalDecision, Attachment, EditMode, LocalModelStatus, Session } from '../protocol';
import { ToolRenderer } from '../registry';
import { keepToastsClear } from '../toasts';
import { ActivityLine } from './ActivityLine';
import { Approval } from './Approval';
import { Composer } from './Composer';
import { ContextBar } from './ContextBar';
import { LocalErrors } from './Errors';
import { LocalModelNotice } from './LocalModelNotice';
import { MessageList } from './MessageList';
import { ReviewActions } from './ReviewCard';
import { SessionBar } from './SessionBar';

/** Everything the panel shows. */
export interface ChatPanelState {
  conversation: ConversationState;
  sessions: Session[];
  activeSessionId: string | null;
  connection: ConnectionState;
  llmReady: boolean | null;
  serverModel: string;
  /** Sessions are private until shared (offer the share toggle). */
  privateSessions?: boolean;
  /** The server's embedded offline model; null when it runs none. */
  localModel: LocalModelStatus | null;
  /** MCP servers whose tools are unavailable. */
  mcpProblems?: McpProblem[];
  models: string[];
  selectedModel: string;
  openNotebooks: string[];
  activeNotebook: string | null;
  contextChoice: ContextChoice;
  contextNotebook: string | null;
  draft: string;
  draftVersion: number;
  planFirst: boolean;
  focusToken: number;
  running: boolean;
  errors: LocalError[];
  voiceState: VoiceState;
  sendOnEnter: boolean;
  thinkingExpanded: boolean;
  /** What `@` offers in the input, and a note on them. */
  mentionOptions?: MentionOption[];
  mentionNote?: string | null;
}

/** Everything the panel can ask for. */
export interface ChatPanelActions {
  openSession(id: string): void;
  newSession(): void;
  renameSession(id: string, title: string): void;
  shareSession(id: string, shared: boolean): void;
  deleteSession(id: string): void;
  refreshSessions(): void;
  setEditMode(mode: EditMode): void;
  /** The review cards' undo, redo, accept, reject, diffs and links. */
  review: ReviewActions;
  setContext(choice: ContextChoice): void;
  setModel(model: string): void;
  setDraft(text: string): void;
  send(text: string, attachments?: Attachment[]): Promise<boolean>;
  /** An `@` mention was started in the input: load what it offers. */
  loadMentions?(): void;
  setPlanFirst(on: boolean): void;
  openPlanner(): void;
  stop(): void;
  approve(callId: string, decision: ApprovalDecision): boolean;
  toggleVoice(): void;
  dismissError(id: number): void;
}

export interface ChatPanelProps {
  state: ChatPanelState;
  actions: ChatPanelActions;
  rendermime: IRenderMimeRegistry;
  getRenderer: (toolName: string) => ToolRenderer;
}

/** The agent chat: sessions, context, conversation, approvals and input. */
export function ChatPanel({ state, actions, rendermime, getRenderer }: ChatPanelProps): JSX.Element {
  const { conversation } = state;
  const root = React.useRef<HTMLDivElement>(null);
  // Lab's notification toasts must never cover the input (the first click would hit a toast).
  React.useEffect(() => (root.current ? keepToastsClear(root.current, '.jp-AgentChat-composer') : undefined), []);
  const activeSession = state.sessions.find(s => s.id === state.activeSessionId);
  const onKeyDown = (e: React.KeyboardEvent) => {
    if (e.key === 'Escape' && state.running) {
      e.preventDefault();
      e.stopPropagation();
      actions.stop();
    }
  };
  // With an offline model, its notice above the input says what it needs: do not also say none is configured.
  const emptyText =
    state.llmReady === false && !state.localModel && !state.serverModel
      ? 'No model is configured on the server yet. Set a model and its API key, then restart Jupyter.'
      : state.llmReady === false && state.serverModel
        ? 'Starting the agent: the server is still loading its model library (a few seconds after Jupyter starts).'
        : 'Ask the agent to explore data, write or fix cells, or explain a notebook. It works in the notebook chosen above.';
  return (
    <div ref={root} className="jp-AgentChat-panel" onKeyDown={onKeyDown}>
      <SessionBar
        sessions={state.sessions}
        activeId={state.activeSessionId}
        onOpen={actions.openSession}
        onNew={actions.newSession}
        onRename={actions.renameSession}
        onShare={state.privateSessions ? actions.shareSession : undefined}
        onDelete={actions.deleteSession}
        onRefresh={actions.refreshSessions}
        onEditMode={actions.setEditMode}
      />
      <ContextBar
        openNotebooks={state.openNotebooks}
        activeNotebook={state.activeNotebook}
        choice={state.contextChoice}
        target={state.contextNotebook}
        models={state.models}
        selectedModel={state.selectedModel}
        onContextChange={actions.setContext}
        onModelChange={actions.setModel}
      />
      {state.connection !== 'connected' && (
        <div className="jp-AgentChat-connection" role="status" data-state={state.connection}>
          {state.connection === 'reconnecting'
            ? 'Connecting to the agent…'
            : 'The agent server cannot be reached. Retrying in the background.'}
        </div>
      )}
      <MessageList
        items={conversation.items}
        rendermime={rendermime}
        getRenderer={getRenderer}
        thinkingExpanded={state.thinkingExpanded}
        emptyText={emptyText}
        onOpenPlanner={actions.openPlanner}
        review={{ reviews: conversation.reviews, actions: actions.review }}
      />
      <ActivityLine activity={conversation.running ? conversation.activity : null} />
      {conversation.approvals.length > 0 && (
        <div className="jp-AgentChat-approvals">
          {conversation.approvals.map(a => (
            <Approval key={a.callId} approval={a} onDecide={actions.approve} />
          ))}
        </div>
      )}
      <LocalErrors errors={state.errors} onDismiss={actions.dismissError} />
      <LocalModelNotice notice={localModelNotice(state.localModel)} />
      {(state.mcpProblems ?? []).map(p => (
        <div key={p.name} className="jp-AgentChat-mcpProblem" role="status" data-testid="agent-mcp-problem">
          {`MCP server ${p.name} is unavailable, so its tools are off: ${p.error}`}
        </div>
      ))}
      <Composer
        draft={state.draft}
        draftVersion={state.draftVersion}
        planFirst={state.planFirst}
        onTogglePlanFirst={() => actions.setPlanFirst(!state.planFirst)}
        focusToken={state.focusToken}
        running={state.running}
        sendOnEnter={state.sendOnEnter}
        readOnly={activeSession?.read_only ? activeSession.read_only_reason ?? 'This session is read-only here.' : null}
        voiceState={state.voiceState}
        onDraftChange={actions.setDraft}
        onSend={actions.send}
        mentionOptions={state.mentionOptions}
        mentionNote={state.mentionNote}
        onMentionStart={actions.loadMentions}
        onStop={actions.stop}
        onToggleVoice={actions.toggleVoice}
      />
    </div>
  );
}
