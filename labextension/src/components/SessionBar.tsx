import * as React from 'react';
import { addIcon, deleteIcon, editIcon } from '@jupyterlab/ui-components';

import { EditMode, Session } from '../protocol';

export interface SessionBarProps {
  sessions: Session[];
  activeId: string | null;
  onOpen: (id: string) => void;
  onNew: () => void;
  onRename: (id: string, title: string) => void;
  /** Share the session with the collaborators of its notebook, or make it private again (its owner only). */
  onShare?: (id: string, shared: boolean) => void;
  /** Make the agent's notebook edits wait for review as pending cells ("review"), or apply them at once ("live"). */
  onEditMode: (mode: EditMode) => void;
  onDelete: (id: string) => void;
  /** Called when the list is about to be used, to fetch sessions others created. */
  onRefresh: () => void;
}

type Mode = 'view' | 'rename' | 'confirm-delete';

/** Switch, create, rename and delete sessions. */
export function SessionBar(props: SessionBarProps): JSX.Element {
  const { sessions, activeId } = props;
  const [mode, setMode] = React.useState<Mode>('view');
  const [title, setTitle] = React.useState('');
  const active = sessions.find(s => s.id === activeId) ?? null;
  const reviewing = active?.edit_mode === 'review';

  React.useEffect(() => setMode('view'), [activeId]);

  if (mode === 'rename' && active) {
    const submit = () => {
      const t = title.trim();
      if (t && t !== active.title) {
        props.onRename(active.id, t);
      }
      setMode('view');
    };
    return (
      <form className="jp-AgentChat-sessionBar" onSubmit={e => (e.preventDefault(), submit())}>
        <input
          className="jp-mod-styled jp-AgentChat-sessionTitle"
          aria-label="Session title"
          data-testid="agent-session-title"
          value={title}
          autoFocus
          onChange={e => setTitle(e.target.value)}
          onKeyDown={e => e.key === 'Escape' && (e.stopPropagation(), setMode('view'))}
        />
        <button type="submit" className="jp-mod-styled jp-mod-accept">Save</button>
        <button type="button" className="jp-mod-styled" onClick={() => setMode('view')}>Cancel</button>
      </form>
    );
  }

  if (mode === 'confirm-delete' && active) {
    return (
      <div className="jp-AgentChat-sessionBar" role="group" aria-label="Confirm deletion">
        <span className="jp-AgentChat-confirm">Delete “{active.title || 'Untitled'}” for everyone?</span>
        <button
          className="jp-mod-styled jp-mod-warn"
          data-testid="agent-delete-confirm"
          onClick={() => (props.onDelete(active.id), setMode('view'))}
        >
          Delete
        </button>
        <button className="jp-mod-styled" onClick={() => setMode('view')}>Cancel</button>
      </div>
    );
  }

  return (
    <div className="jp-AgentChat-sessionBar">
      <select
        className="jp-mod-styled jp-AgentChat-sessionSelect"
        data-testid="agent-session-list"
        aria-label="Session"
        value={activeId ?? ''}
        onFocus={props.onRefresh}
        onChange={e => e.target.value && props.onOpen(e.target.value)}
      >
        {!active && <option value="">{sessions.length ? 'Choose a session…' : 'No sessions yet'}</option>}
        {sessions.map(s => (
          <option key={s.id} value={s.id}>
            {(s.title || 'Untitled') + (s.running ? ' (running)' : '')}
          </option>
        ))}
      </select>
      <button
        className="jp-AgentChat-iconButton"
        data-testid="agent-new-session"
        aria-label="New session"
        title="New session"
        onClick={props.onNew}
      >
        <addIcon.react tag="span" />
      </button>
      <button
        className="jp-AgentChat-iconButton"
        data-testid="agent-rename-session"
        aria-label="Rename session"
        title="Rename session"
        disabled={!active}
        onClick={() => (setTitle(active?.title ?? ''), setMode('rename'))}
      >
        <editIcon.react tag="span" />
      </button>
      {props.onShare && (<button
        className={`jp-AgentChat-shareButton${active?.shared ? ' jp-mod-active' : ''}`}
        data-testid="agent-share-session"
        aria-pressed={!!active?.shared}
        aria-label={active?.shared ? 'Shared with collaborators: make private' : 'Private: share with collaborators'}
        title={
          active?.shared
            ? 'Shared: the collaborators of this notebook see this session. Click to make it private.'
            : 'Private: only you see this session. Click to share it with the collaborators of this notebook.'
        }
        disabled={!active || !!active.read_only}
        onClick={() => active && props.onShare?.(active.id, !active.shared)}
      >
        {active?.shared ? 'Shared' : 'Private'}
      </button>)}
      <button
        className={`jp-AgentChat-shareButton jp-agent-edit-mode-toggle${reviewing ? ' jp-mod-active' : ''}`}
        data-mode={reviewing ? 'review' : 'live'}
        aria-pressed={reviewing}
        title={
          reviewing
            ? "Review edits: the agent's notebook edits wait as pending cells until accepted or rejected. Click to apply them at once."
            : "Live edits: the agent's notebook edits apply at once (each turn can be undone). Click to review them first."
        }
        disabled={!active || !!active.read_only}
        onClick={() => props.onEditMode(reviewing ? 'live' : 'review')}
      >
        Review edits
      </button>
      <button
        className="jp-AgentChat-iconButton"
        data-testid="agent-delete-session"
        aria-label="Delete session"
        title="Delete session"
        disabled={!active}
        onClick={() => setMode('confirm-delete')}
      >
        <deleteIcon.react tag="span" />
      </button>
    </div>
  );
}
