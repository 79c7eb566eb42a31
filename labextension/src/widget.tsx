/**
 * The chat panel as a Lumino widget: renders AgentChat's state with ChatPanel and
 * routes the panel's callbacks to AgentChat.
 */
import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { AgentChat } from './chat';
import { ChatPanel, ChatPanelActions, ChatPanelState } from './components/ChatPanel';
import { OpenCell } from './components/NotebookToolRenderer';
import { agentIcon } from './icons';
import { IToolRendererRegistry } from './registry';

/** The widget id; stable for tests and for `shell.activateById`. */
export const CHAT_WIDGET_ID = 'jupyter-agent-chat';

export class ChatWidget extends ReactWidget {
  constructor(
    private readonly _chat: AgentChat,
    private readonly _rendermime: IRenderMimeRegistry,
    private readonly _registry: IToolRendererRegistry,
    open: OpenCell
  ) {
    super();
    this.id = CHAT_WIDGET_ID;
    this.title.icon = agentIcon;
    this.title.caption = 'Agent chat';
    this.addClass('jp-AgentChat');
    // update() is conflated by Lumino: many changes in one frame give one render.
    _chat.changed.connect(() => this.update(), this);
    _registry.changed.connect(() => this.update(), this);
    _chat.focusRequested.connect(() => this._focusInput(), this);
    const chat = _chat;
    this._actions = {
      openSession: id => chat.openSession(id),
      newSession: () => void chat.newSession(),
      renameSession: (id, title) => void chat.renameSession(id, title),
      shareSession: (id, shared) => void chat.shareSession(id, shared),
      deleteSession: id => void chat.deleteSession(id),
      refreshSessions: () => void chat.refreshSessions(),
      setEditMode: mode => void chat.setEditMode(mode),
      review: {
        loadChanges: turn => chat.turnChanges(turn),
        undo: (turn, resolve) => chat.undoTurn(turn, resolve),
        redo: turn => chat.redoTurn(turn),
        review: (turn, action) => chat.reviewTurn(turn, action),
        open
      },
      setContext: choice => chat.setContext(choice),
      setModel: model => chat.setModel(model),
      setDraft: text => chat.setDraft(text),
      send: (text, attachments) => chat.send(text, undefined, attachments),
      loadMentions: () => void chat.loadMentions(),
      setPlanFirst: on => chat.setPlanFirst(on),
      openPlanner: () => chat.openPlanner(),
      stop: () => chat.cancel(),
      approve: (callId, decision) => chat.approve(callId, decision),
      toggleVoice: () => void chat.toggleVoice(),
      dismissError: id => chat.dismissError(id)
    };
  }

  protected render(): JSX.Element {
    return (
      <ChatPanel
        state={this._state()}
        actions={this._actions}
        rendermime={this._rendermime}
        getRenderer={name => this._registry.get(name)}
      />
    );
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this._focusInput();
  }

  private _focusInput(): void {
    this._focusToken++;
    this.update();
  }

  private _state(): ChatPanelState {
    const c = this._chat;
    return {
      conversation: c.model.state,
      sessions: c.sessions,
      activeSessionId: c.activeSessionId,
      connection: c.connectionState,
      llmReady: c.llmReady,
      serverModel: c.serverModel,
      privateSessions: c.privateSessions,
      localModel: c.localModel.status,
      mcpProblems: c.mcpProblems,
      models: c.models,
      selectedModel: c.selectedModel,
      openNotebooks: c.openNotebooks,
      activeNotebook: c.activeNotebook,
      contextChoice: c.contextChoice,
      contextNotebook: c.contextNotebook,
      draft: c.draft,
      draftVersion: c.draftVersion,
      planFirst: c.planFirst,
      focusToken: this._focusToken,
      running: c.running,
      errors: c.errors,
      voiceState: c.voiceState,
      sendOnEnter: c.settings.sendOnEnter,
      thinkingExpanded: c.settings.thinkingExpanded,
      mentionOptions: c.mentionOptions,
      mentionNote: c.mentionNote
    };
  }

  private _actions: ChatPanelActions;
  private _focusToken = 0;
}
