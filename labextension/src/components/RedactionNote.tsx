import * as React from 'react';

import { RedactionItem } from '../conversation';

/** The note a turn ends with when the server hid secrets (or personal data) from the model and the logs. */
export function RedactionNote({ item }: { item: RedactionItem }): JSX.Element {
  const kinds = Object.entries(item.counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, n]) => `${kind.replace(/_/g, ' ')}${n > 1 ? ` ×${n}` : ''}`);
  const what = item.total === 1 ? '1 value' : `${item.total} values`;
  return (
    <div
      className="jp-AgentChat-redaction"
      data-testid="agent-redaction"
      title="Replaced by placeholders such as [SECRET_1a2b3c4d] in what the model, the logs and the audit log see; tools still get the real values."
    >
      {`Hidden from the model and the logs: ${what} (${kinds.join(', ')})`}
    </div>
  );
}
