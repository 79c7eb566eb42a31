import * as React from 'react';

import { ToolCard as ToolCardData, ToolStatus } from '../conversation';
import { ToolRenderer } from '../registry';
import { formatDuration } from './format';

const STATUS_LABEL: Record<ToolStatus, string> = {
  pending: 'queued',
  waiting_approval: 'waiting for approval',
  running: 'running…',
  done: 'done',
  error: 'failed'
};

export interface ToolCardProps {
  card: ToolCardData;
  /** The body renderer chosen from the tool renderer registry. */
  renderer: ToolRenderer;
}

/** The frame of a tool call (name, status, duration); the body comes from the registry. */
export function ToolCard({ card, renderer: Body }: ToolCardProps): JSX.Element {
  return (
    <div
      className={`jp-AgentChat-toolCard jp-mod-${card.status}`}
      data-testid="agent-tool-card"
      data-tool={card.name}
      data-status={card.status}
    >
      <div className="jp-AgentChat-toolHeader">
        <span className="jp-AgentChat-toolName">{card.name || 'tool'}</span>
        <span className={`jp-AgentChat-toolStatus jp-mod-${card.status}`}>{STATUS_LABEL[card.status]}</span>
        {card.durationMs !== undefined && (
          <span className="jp-AgentChat-toolDuration">{formatDuration(card.durationMs)}</span>
        )}
      </div>
      {card.approval && (
        <div className="jp-AgentChat-toolApproval">{approvalText(card)}</div>
      )}
      <Body card={card} />
    </div>
  );
}

function approvalText(card: ToolCardData): string {
  const who = card.approvalUser ? ` by ${card.approvalUser.display_name || card.approvalUser.username}` : '';
  switch (card.approval) {
    case 'once':
      return `Allowed once${who}`;
    case 'always':
      return `Always allowed${who}`;
    case 'deny':
      return `Denied${who}`;
    default:
      return 'Nobody answered in time';
  }
}
