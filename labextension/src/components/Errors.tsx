import * as React from 'react';
import { closeIcon } from '@jupyterlab/ui-components';

import { LocalError } from '../chat';
import { ErrorItem } from '../conversation';

/** An error that ended a turn, with what to do about it. */
export function TurnError({ item }: { item: ErrorItem }): JSX.Element {
  return (
    <div className="jp-AgentChat-error" data-testid="agent-error" data-code={item.code} role="alert">
      <div className="jp-AgentChat-errorMessage">{item.message}</div>
      <div className="jp-AgentChat-errorHint">{item.hint}</div>
    </div>
  );
}

export interface LocalErrorsProps {
  errors: LocalError[];
  onDismiss: (id: number) => void;
}

/** Problems of this page (connection, microphone, failed calls); each can be dismissed. */
export function LocalErrors({ errors, onDismiss }: LocalErrorsProps): JSX.Element | null {
  if (!errors.length) {
    return null;
  }
  return (
    <div className="jp-AgentChat-localErrors">
      {errors.map(e => (
        <div key={e.id} className="jp-AgentChat-error" data-testid="agent-error" data-code={e.code} role="alert">
          <div className="jp-AgentChat-errorMessage">{e.message}</div>
          <div className="jp-AgentChat-errorHint">{e.hint}</div>
          <button
            className="jp-AgentChat-iconButton jp-AgentChat-dismiss"
            aria-label="Dismiss error"
            title="Dismiss"
            onClick={() => onDismiss(e.id)}
          >
            <closeIcon.react tag="span" />
          </button>
        </div>
      ))}
    </div>
  );
}
