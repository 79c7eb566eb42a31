import * as React from 'react';

import { elapsedSeconds, formatElapsed } from '../activity';
import { Activity } from '../viewModel';

/** The time now (ms), renewed every second while `active`: a timer in the component, not events. */
export function useNow(active: boolean): number {
  const [now, setNow] = React.useState(() => Date.now());
  React.useEffect(() => {
    if (!active) {
      return;
    }
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [active]);
  return active ? Math.max(now, Date.now()) : now;
}

export interface ActivityLineProps {
  /** What the running turn does; null when no turn runs. */
  activity: Activity | null;
}

/** "reading your request (prompt 1,870 tokens, 45%) · 12 s" under the conversation while a turn runs. */
export function ActivityLine({ activity }: ActivityLineProps): JSX.Element | null {
  const now = useNow(activity !== null);
  if (!activity) {
    return null;
  }
  const progress = activity.progress;
  return (
    <div
      className="jp-AgentChat-activity"
      data-testid="agent-activity"
      data-phase={activity.phase}
      data-step={activity.step ?? ''}
      data-progress={progress ?? ''}
    >
      <div className="jp-AgentChat-activityRow">
        <span className="jp-AgentChat-activitySpinner" aria-hidden="true" />
        {/* Read out when the text changes; the ticking seconds are left out of that. */}
        <span className="jp-AgentChat-activityText" role="status">
          {activity.text}
        </span>
        <span className="jp-AgentChat-activityTime" aria-hidden="true">
          {formatElapsed(elapsedSeconds(activity, now))}
        </span>
      </div>
      {progress !== null && (
        <span className="jp-AgentChat-activityBar" aria-hidden="true">
          <span style={{ width: `${Math.round(Math.min(1, Math.max(0, progress)) * 100)}%` }} />
        </span>
      )}
    </div>
  );
}
