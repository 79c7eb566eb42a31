import * as React from 'react';

import { activityLabel } from '../activity';
import { ConnectionState } from '../connection';
import { localModelStatusLabel } from '../localModel';
import { LocalModelStatus } from '../protocol';
import { Activity } from '../viewModel';
import { useNow } from './ActivityLine';

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
  /** What the running turn of the open session does; null when none runs. */
  activity?: Activity | null;
  onClick: () => void;
}

/**
 * Status bar item: connection, round-trip latency, running tools, the offline model's state and what the
 * running turn does (with its time, ticking); opens the chat.
 */
export function StatusItem({ state, latency, runningTools, localModel, activity = null, onClick }: StatusItemProps): JSX.Element {
  const now = useNow(activity !== null);
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
  if (activity) {
    parts.push(activityLabel(activity, now));
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
      data-activity={activity?.text ?? ''}
      aria-label={`${text}. Open the agent chat`}
      title={activity ? `${activity.text}. Open the agent chat` : 'Open the agent chat'}
      onClick={onClick}
    >
      <span className="jp-AgentChat-statusDot" aria-hidden="true" />
      <span className="jp-AgentChat-statusText">{text}</span>
    </button>
  );
}
