import * as React from 'react';

import { MentionOption } from '../mentions';

export interface MentionMenuProps {
  options: MentionOption[];
  /** Index of the highlighted option (Enter or Tab picks it). */
  active: number;
  /** Said instead of, or under, the options: still loading, no kernel running, or why variables are missing. */
  note: string | null;
  onPick: (option: MentionOption) => void;
  onHighlight: (index: number) => void;
}

/** The `@` completion list above the chat input: the notebook's kernel variables, then its cells. */
export function MentionMenu({ options, active, note, onPick, onHighlight }: MentionMenuProps): JSX.Element | null {
  if (!options.length && !note) {
    return null;
  }
  return (
    <div className="jp-AgentChat-mentionMenu" data-testid="agent-mention-menu">
      {options.length > 0 && (
        <ul role="listbox" aria-label="Variables and cells to attach">
          {options.map((option, i) => (
            <li
              key={`${option.kind}:${option.key}`}
              role="option"
              aria-selected={i === active}
              className={`jp-AgentChat-mentionOption${i === active ? ' jp-mod-active' : ''}`}
              data-testid="agent-mention-option"
              data-kind={option.kind}
              data-token={option.token}
              // mousedown, not click: the input keeps the focus (and its caret)
              onMouseDown={e => {
                e.preventDefault();
                onPick(option);
              }}
              onMouseEnter={() => onHighlight(i)}
            >
              <span className="jp-AgentChat-mentionToken">@{option.token}</span>
              <span className="jp-AgentChat-mentionDetail">{option.detail}</span>
            </li>
          ))}
        </ul>
      )}
      {note && <div className="jp-AgentChat-mentionNote">{note}</div>}
    </div>
  );
}
