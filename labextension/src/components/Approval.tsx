import * as React from 'react';

import { PendingApproval } from '../conversation';
import { ApprovalDecision } from '../protocol';
import { formatArguments } from './format';

export interface ApprovalProps {
  approval: PendingApproval;
  /** Returns false when the decision could not be sent (the prompt then stays usable). */
  onDecide: (callId: string, decision: ApprovalDecision) => boolean;
}

/**
 * Asks a person whether a tool call may run, naming the plan task that made it. Stays until someone
 * decides (or the server times out).
 */
export function Approval({ approval, onDecide }: ApprovalProps): JSX.Element {
  const [sent, setSent] = React.useState(false);
  const decide = (decision: ApprovalDecision) => {
    setSent(onDecide(approval.callId, decision));
  };
  const titleId = `jp-AgentChat-approval-${React.useId()}`; // the chat and the planner may both show it
  return (
    <div
      className="jp-AgentChat-approval"
      data-testid="agent-approval"
      data-tool={approval.name}
      data-call={approval.callId}
      data-task={approval.task?.id}
      role="group"
      aria-labelledby={approval.task ? `${titleId}-task ${titleId}` : titleId}
    >
      {approval.task && (
        <div id={`${titleId}-task`} className="jp-AgentChat-approvalTask" data-testid="agent-approval-task">
          Task {approval.task.id}
          {approval.task.title && ` · ${approval.task.title}`}
        </div>
      )}
      <div id={titleId} className="jp-AgentChat-approvalTitle">
        The agent wants to run <code>{approval.name}</code>
      </div>
      {approval.reason && <div className="jp-AgentChat-approvalReason">{approval.reason}</div>}
      <pre className="jp-AgentChat-approvalArgs" aria-label="Arguments">
        {formatArguments(approval.arguments) || '(no arguments)'}
      </pre>
      <div className="jp-AgentChat-approvalButtons">
        <button
          className="jp-mod-styled jp-mod-accept"
          data-testid="agent-approve-once"
          disabled={sent}
          onClick={() => decide('once')}
        >
          Allow once
        </button>
        <button
          className="jp-mod-styled"
          data-testid="agent-approve-always"
          disabled={sent}
          title={`Always allow ${approval.name} without asking`}
          onClick={() => decide('always')}
        >
          Always allow
        </button>
        <button
          className="jp-mod-styled jp-mod-warn"
          data-testid="agent-deny"
          disabled={sent}
          onClick={() => decide('deny')}
        >
          Deny
        </button>
      </div>
    </div>
  );
}
