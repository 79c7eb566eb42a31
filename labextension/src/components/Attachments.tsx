import * as React from 'react';

import { Attachment } from '../protocol';

/** The turn's context line: what the person attached with `@`; each shows what the model read of it. */
export function Attachments({ attachments }: { attachments?: Attachment[] }): JSX.Element | null {
  if (!attachments?.length) {
    return null;
  }
  return (
    <div className="jp-AgentChat-attachments" data-testid="agent-attachments">
      <span className="jp-AgentChat-fieldLabel">Attached</span>
      {attachments.map((a, i) => (
        <details key={i} className="jp-AgentChat-attachment" data-testid="agent-attachment" data-kind={a.kind}>
          <summary title={a.summary}>{a.label ?? (a.kind === 'variable' ? `@${a.name}` : '@cell')}</summary>
          {a.summary && <pre className="jp-AgentChat-attachmentSummary">{a.summary}</pre>}
        </details>
      ))}
    </div>
  );
}
