/**
 * Public types of the agent chat and its token, kept apart from the implementation.
 */
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import { IAgentClient } from './client';
import { LocalModelWatcher } from './localModel';
import { ChatModel } from './model';
import { Attachment } from './protocol';

export interface ChatSettings {
  defaultModel: string;
  sendOnEnter: boolean;
  thinkingExpanded: boolean;
  transcriptionModel: string;
}

export const DEFAULT_SETTINGS: ChatSettings = {
  defaultModel: '',
  sendOnEnter: true,
  thinkingExpanded: false,
  transcriptionModel: ''
};

/** An error shown in the panel that is not part of the session log. */
export interface LocalError {
  id: number;
  code: string;
  message: string;
  hint: string;
}

/** Which notebook a request acts on: the active one, none, or a chosen path. */
export type ContextChoice = { mode: 'active' } | { mode: 'none' } | { mode: 'path'; path: string };

export type VoiceState = 'idle' | 'recording' | 'transcribing';

export interface IAgentChat {
  readonly client: IAgentClient;
  /** The conversation of the active session. */
  readonly model: ChatModel;
  readonly changed: ISignal<IAgentChat, void>;
  /** Asks the panel to show itself and focus the input. */
  readonly focusRequested: ISignal<IAgentChat, void>;
  readonly activeSessionId: string | null;
  /** The server's embedded offline model (its status is null when the server runs none). */
  readonly localModel: LocalModelWatcher;
  /** Asks for the planner panel on the active session's plan (the planner plugin shows it). */
  readonly plannerRequested: ISignal<IAgentChat, void>;
  openPlanner(): void;
  /** Put text in the input (not sent) and focus it. */
  prefill(text: string): void;
  /** Send a prompt; `notebook` overrides the context bar; `attachments`: its `@` mentions (of that notebook).
   * Resolves false when it was not sent. */
  send(text?: string, notebook?: string | null, attachments?: Attachment[]): Promise<boolean>;
  reportError(code: string, message: string): void;
}

export const IAgentChat = new Token<IAgentChat>(
  'jupyter-agent:IAgentChat',
  'The agent chat: active session, conversation, input and actions.'
);
