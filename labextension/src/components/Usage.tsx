import * as React from 'react';

import { TurnEndItem } from '../conversation';
import { modelLabel } from '../localModel';
import { formatCost, formatCount, formatDuration } from './format';

const REASON: Record<string, string> = {
  cancelled: 'Stopped',
  max_steps: 'Stopped after the maximum number of steps'
};

/** The line that closes a turn: why it ended, tokens, cost and latency. */
export function Usage({ item }: { item: TurnEndItem }): JSX.Element {
  const u = item.usage;
  const parts: string[] = [];
  if (REASON[item.reason]) {
    parts.push(REASON[item.reason]);
  }
  if (u) {
    parts.push(
      `${formatCount(u.totalTokens)} tokens (${formatCount(u.promptTokens)} in, ${formatCount(u.completionTokens)} out)`,
      formatCost(u.cost),
      formatDuration(u.latencyMs)
    );
    if (u.model) {
      parts.push(modelLabel(u.model));
    }
  }
  return (
    <div className="jp-AgentChat-usage" data-testid="agent-usage" data-reason={item.reason}>
      {parts.filter(Boolean).join(' · ')}
    </div>
  );
}
