import * as React from 'react';

import { LocalModelNotice as Notice } from '../localModel';

/** Above the input while the offline model is not ready: starting (with a spinner), or why it cannot run. */
export function LocalModelNotice({ notice }: { notice: Notice | null }): JSX.Element | null {
  if (!notice) {
    return null;
  }
  return (
    <div className="jp-AgentChat-localModel" role="status" data-testid="agent-local-model" data-state={notice.state}>
      {notice.state === 'starting' && <span className="jp-AgentChat-spinner" aria-hidden="true" />}
      <div className="jp-AgentChat-localModelBody">
        <div className="jp-AgentChat-localModelTitle">{notice.title}</div>
        {notice.detail && (
          <div className="jp-AgentChat-localModelDetail">
            <Detail text={notice.detail} command={notice.command} />
          </div>
        )}
        {notice.hint && <div className="jp-AgentChat-localModelHint">{notice.hint}</div>}
      </div>
    </div>
  );
}

/** The server's explanation, with its install command set apart as code (easy to select and copy). */
function Detail({ text, command }: { text: string; command: string | null }): JSX.Element {
  const at = command ? text.indexOf(command) : -1;
  if (!command || at < 0) {
    return <>{text}</>;
  }
  return (
    <>
      {text.slice(0, at)}
      <code data-testid="agent-local-model-command">{command}</code>
      {text.slice(at + command.length)}
    </>
  );
}
