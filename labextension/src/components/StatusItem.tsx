import * as React from 'react';

import { ConnectionState } from '../connection';
import { localModelStatusLabel } from '../localModel';
import { LocalModelStatus } from '../protocol';

const LABEL: Record<ConnectionState, string> = {
  connected: 'connected',
  reconnecting: 'connecting…',
  disconnected: 'offline'
};

export interface StatusItemProps {
  state: ConnectionState;
  latency: number | null;
  runningTools: number;
  /** The server's embedded offline model; null when it runs none. */
  localModel: LocalModelStatus | null;
  onClick: () => void;
}

/** Status bar item: connection, round-trip latency, running tools and the offline model's state; opens the chat. */
export function StatusItem({ state, latency, runningTools, localModel, onClick }: StatusItemProps): JSX.Element {
  const parts = [`Agent: ${LABEL[state]}`];
  if (state === 'connected' && latency !== null) {
    parts.push(`${latency} ms`);
  }
  if (runningTools > 0) {
    parts.push(`${runningTools} tool${runningTools === 1 ? '' : 's'} running`);
  }
  const offline = localModelStatusLabel(localModel);
  if (offline) {
    parts.push(offline);
  }
  const text = parts.join(' · ');
  return (
    <button
      className={`jp-AgentChat-statusItem jp-mod-${state}`}
      data-testid="agent-status"
      data-state={state}
      data-latency={latency ?? ''}
      data-running-tools={runningTools}
      data-local-model={localModel?.state ?? ''}
      aria-label={`${text}. Open the agent chat`}
      title="Open the agent chat"
      onClick={onClick}
    >
      <span className="jp-AgentChat-statusDot" aria-hidden="true" />
      {text}
    </button>
  );
}
