import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { MessageItem } from '../conversation';
import { Attachments } from './Attachments';
import { Markdown } from './Markdown';
import { baseName } from './format';

export interface MessageProps {
  message: MessageItem;
  rendermime: IRenderMimeRegistry;
  thinkingExpanded: boolean;
}

/** One user or assistant message; the assistant's reasoning is a collapsible block. */
export function Message({ message, rendermime, thinkingExpanded }: MessageProps): JSX.Element | null {
  const { role, text, thinking, streaming, user, context } = message;
  if (role === 'assistant' && !text && !thinking && !streaming) {
    return null; // a step that only called tools: the tool cards say it all
  }
  const author = role === 'user' ? user?.display_name || user?.username || 'You' : 'Agent';
  return (
    <div
      className={`jp-AgentChat-message jp-AgentChat-message-${role}`}
      data-testid="agent-message"
      data-role={role}
      data-streaming={streaming ? 'true' : 'false'}
      aria-busy={streaming || undefined}
    >
      <div className="jp-AgentChat-messageHeader">
        <span className="jp-AgentChat-author">{author}</span>
        {context?.notebook && (
          <span className="jp-AgentChat-messageContext" title={context.notebook}>
            on {baseName(context.notebook)}
          </span>
        )}
      </div>
      {role === 'user' && <Attachments attachments={context?.attachments} />}
      {thinking && (
        <details className="jp-AgentChat-thinking" open={thinkingExpanded}>
          <summary>{streaming && !text ? 'Thinking…' : 'Reasoning'}</summary>
          <div className="jp-AgentChat-thinkingText">{thinking}</div>
        </details>
      )}
      {text &&
        (role === 'user' ? (
          <div className="jp-AgentChat-userText">{text}</div>
        ) : (
          <Markdown text={text} rendermime={rendermime} streaming={streaming} />
        ))}
      {streaming && <span className="jp-AgentChat-cursor" aria-hidden="true" />}
    </div>
  );
}
