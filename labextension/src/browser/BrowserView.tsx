import * as React from 'react';
import { caretLeftIcon, caretRightIcon, refreshIcon } from '@jupyterlab/ui-components';

import { keyInput, normalizeUrl, toPagePoint } from './geometry';
import { BrowserViewState } from './model';
import { BrowserInput } from './protocol';

export interface BrowserViewActions {
  takeControl(): void;
  handBack(): void;
  input(input: BrowserInput): void;
  scroll(dx: number, dy: number, x?: number, y?: number): void;
  dismissError(): void;
}

export interface BrowserViewProps {
  state: BrowserViewState;
  actions: BrowserViewActions;
}

/** The Agent Browser panel: address bar, history buttons, the control toggle and the live picture. */
export function BrowserView({ state, actions }: BrowserViewProps): JSX.Element {
  const { inControl, frame } = state;
  const [draft, setDraft] = React.useState<string | null>(null);
  const imageRef = React.useRef<HTMLImageElement>(null);
  const viewportRef = React.useRef<HTMLDivElement>(null);
  const someoneElse = state.controlledBy !== null && !inControl;
  const canAct = inControl && state.connection === 'connected';

  const pagePoint = (clientX: number, clientY: number) => {
    const image = imageRef.current;
    if (!image || !frame) {
      return null;
    }
    return toPagePoint(clientX, clientY, image.getBoundingClientRect(), frame.width, frame.height);
  };

  const onImageClick = (event: React.MouseEvent) => {
    viewportRef.current?.focus();
    const point = canAct ? pagePoint(event.clientX, event.clientY) : null;
    if (point) {
      actions.input({ action: 'click', ...point });
    }
  };

  const onKeyDown = (event: React.KeyboardEvent) => {
    if (!canAct) {
      return;
    }
    const input = keyInput(event);
    if (input) {
      event.preventDefault();
      event.stopPropagation();
      actions.input(input);
    }
  };

  const onWheel = (event: React.WheelEvent) => {
    if (canAct) {
      const point = pagePoint(event.clientX, event.clientY);
      actions.scroll(event.deltaX, event.deltaY, point?.x, point?.y);
    }
  };

  const onPaste = (event: React.ClipboardEvent) => {
    const text = event.clipboardData.getData('text/plain');
    if (canAct && text) {
      event.preventDefault();
      actions.input({ action: 'type', text });
    }
  };

  const onAddressKey = (event: React.KeyboardEvent<HTMLInputElement>) => {
    if (event.key === 'Enter') {
      const url = normalizeUrl(event.currentTarget.value);
      if (url && canAct) {
        actions.input({ action: 'navigate', url });
      }
      setDraft(null);
      viewportRef.current?.focus();
    } else if (event.key === 'Escape') {
      setDraft(null);
    }
  };

  const controlLabel = inControl ? 'Hand back to the agent' : 'Take control';
  const controlTitle = someoneElse
    ? `${personName(state.controlledBy)} is controlling the browser`
    : inControl
      ? 'Let the agent use the browser again'
      : 'Use the browser yourself; the agent waits until you hand it back';
  const lockedTitle = inControl ? undefined : 'Take control to browse';

  return (
    <div className="jp-AgentBrowser-body" data-testid="agent-browser" data-in-control={inControl}>
      <div className="jp-AgentBrowser-toolbar" role="toolbar" aria-label="Agent browser">
        <button
          className="jp-AgentBrowser-button"
          data-testid="agent-browser-back"
          aria-label="Back"
          title={lockedTitle ?? 'Back'}
          disabled={!canAct}
          onClick={() => actions.input({ action: 'back' })}
        >
          <caretLeftIcon.react tag="span" />
        </button>
        <button
          className="jp-AgentBrowser-button"
          data-testid="agent-browser-forward"
          aria-label="Forward"
          title={lockedTitle ?? 'Forward'}
          disabled={!canAct}
          onClick={() => actions.input({ action: 'forward' })}
        >
          <caretRightIcon.react tag="span" />
        </button>
        <button
          className="jp-AgentBrowser-button"
          data-testid="agent-browser-reload"
          aria-label="Reload"
          title={lockedTitle ?? 'Reload'}
          disabled={!canAct || !state.active}
          onClick={() => actions.input({ action: 'reload' })}
        >
          <refreshIcon.react tag="span" />
        </button>
        <input
          className="jp-AgentBrowser-url"
          data-testid="agent-browser-url"
          aria-label="Address"
          type="text"
          spellCheck={false}
          placeholder={inControl ? 'Type a URL and press Enter' : 'No page yet'}
          value={draft ?? state.url}
          readOnly={!canAct}
          title={lockedTitle ?? state.url}
          onChange={event => setDraft(event.target.value)}
          onKeyDown={onAddressKey}
          onBlur={() => setDraft(null)}
        />
        <button
          className={`jp-AgentBrowser-control${inControl ? ' jp-mod-active' : ''}`}
          data-testid="agent-browser-control"
          aria-pressed={inControl}
          title={controlTitle}
          disabled={someoneElse || state.connection !== 'connected'}
          onClick={() => (inControl ? actions.handBack() : actions.takeControl())}
        >
          {controlLabel}
        </button>
      </div>
      <div className="jp-AgentBrowser-status" role="status" data-testid="agent-browser-status">
        {statusText(state)}
      </div>
      {state.error && (
        <div className="jp-AgentBrowser-error" role="alert">
          <span>{state.error}</span>
          <button aria-label="Dismiss the error" onClick={actions.dismissError}>
            ×
          </button>
        </div>
      )}
      <div
        ref={viewportRef}
        className={`jp-AgentBrowser-viewport${canAct ? ' jp-mod-control' : ''}`}
        tabIndex={0}
        role="group"
        aria-label={canAct ? 'Live page: click and type to use it' : 'Live page'}
        // While in control, keys go to the page rather than to JupyterLab's shortcuts.
        data-lm-suppress-shortcuts={canAct ? 'true' : undefined}
        onKeyDown={onKeyDown}
        onWheel={onWheel}
        onPaste={onPaste}
      >
        {frame ? (
          <img
            ref={imageRef}
            className="jp-AgentBrowser-frame"
            data-testid="agent-browser-frame"
            data-seq={frame.seq}
            src={frame.src}
            alt={`The agent's browser showing ${state.title || state.url || 'a page'}`}
            draggable={false}
            onClick={onImageClick}
          />
        ) : (
          <div className="jp-AgentBrowser-empty" data-testid="agent-browser-empty">
            {state.sessionId
              ? 'The agent has not opened a web page in this chat yet.'
              : 'Open or start a chat to see its browser.'}
          </div>
        )}
      </div>
    </div>
  );
}

function statusText(state: BrowserViewState): string {
  if (state.connection === 'connecting' || state.connection === 'reconnecting') {
    return state.connection === 'connecting' ? 'Connecting…' : 'Reconnecting…';
  }
  if (state.inControl) {
    return state.agentWaiting
      ? 'You are in control. The agent is waiting for you to hand the browser back.'
      : 'You are in control: clicks, keys and scrolling go to the page.';
  }
  if (state.controlledBy) {
    return `${personName(state.controlledBy)} is controlling the browser.`;
  }
  return state.title ? `The agent's browser: ${state.title}` : '';
}

function personName(user: BrowserViewState['controlledBy']): string {
  return user ? user.display_name || user.username : 'Someone';
}
