import * as React from 'react';

import { CompactionItem } from '../viewModel';

/** Where the earlier conversation was summarised for the model; the summary opens on a click. */
export function CompactionNote({ item }: { item: CompactionItem }): JSX.Element {
  const how = item.fallback ? 'listed briefly (the model could not summarise it)' : 'summarised';
  const sizes =
    item.tokensBefore > 0 ? ` (${item.messages} messages, ${item.tokensBefore.toLocaleString()} → ${item.tokensAfter.toLocaleString()} tokens)` : '';
  return (
    <details className="jp-AgentChat-compaction" data-testid="agent-compaction">
      <summary title="The model reads this memory instead of the earlier messages; the whole conversation stays in the session's log.">
        {`Earlier conversation ${how} to fit the model's context window${sizes}`}
      </summary>
      <pre>{item.summary}</pre>
    </details>
  );
}
