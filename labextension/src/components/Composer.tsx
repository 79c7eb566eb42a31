import * as React from 'react';
import { stopIcon } from '@jupyterlab/ui-components';

import { VoiceState } from '../chat';
import { micIcon } from '../icons';
import { MentionOption, MentionQuery, attachmentsFor, filterOptions, insertMention, mentionQuery } from '../mentions';
import { Attachment } from '../protocol';
import { MentionMenu } from './MentionMenu';

export interface ComposerProps {
  /** Text put in the input from outside (commands, voice); applied when `draftVersion` changes. */
  draft: string;
  draftVersion: number;
  /** The next prompt is planned into tasks first (`plan: true`). */
  planFirst: boolean;
  onTogglePlanFirst: () => void;
  /** Changes when the input should take the focus. */
  focusToken: number;
  running: boolean;
  /** Why nothing can be sent here (another process runs this session), or null. */
  readOnly?: string | null;
  sendOnEnter: boolean;
  voiceState: VoiceState;
  onDraftChange: (text: string) => void;
  /** Resolves true when the prompt was sent (the input is then cleared); `attachments`: its `@` mentions. */
  onSend: (text: string, attachments: Attachment[]) => Promise<boolean>;
  /** What `@` offers: the notebook's kernel variables and cells (loaded on `onMentionStart`). */
  mentionOptions?: MentionOption[];
  mentionNote?: string | null;
  /** An `@` mention was started: load the options. */
  onMentionStart?: () => void;
  onStop: () => void;
  onToggleVoice: () => void;
}

const MIC_LABEL: Record<VoiceState, string> = {
  idle: 'Start voice input',
  recording: 'Stop recording and transcribe',
  transcribing: 'Transcribing…'
};

/** The message input with its send, stop and microphone buttons. */
export function Composer(props: ComposerProps): JSX.Element {
  const { running, sendOnEnter, voiceState } = props;
  const [text, setText] = React.useState(props.draft);
  const input = React.useRef<HTMLTextAreaElement>(null);
  const [mention, setMention] = React.useState<MentionQuery | null>(null);
  const [highlighted, setHighlighted] = React.useState(0);
  const chosen = React.useRef<MentionOption[]>([]);
  const caretAfter = React.useRef<number | null>(null);
  const options = mention ? filterOptions(props.mentionOptions ?? [], mention.query) : [];

  React.useEffect(() => setText(props.draft), [props.draftVersion]);
  React.useEffect(() => {
    const el = input.current;
    if (el && caretAfter.current !== null) {
      el.setSelectionRange(caretAfter.current, caretAfter.current);
      caretAfter.current = null;
    }
  }, [text]);
  React.useEffect(() => {
    if (props.focusToken) {
      const el = input.current;
      el?.focus();
      el?.setSelectionRange(el.value.length, el.value.length);
    }
  }, [props.focusToken]);

  const change = (value: string, caret: number) => {
    setText(value);
    props.onDraftChange(value);
    const query = mentionQuery(value, caret);
    if (query && !mention) {
      props.onMentionStart?.();
    }
    if (query?.query !== mention?.query) {
      setHighlighted(0);
    }
    setMention(query);
  };
  const pick = (option: MentionOption) => {
    if (!mention) {
      return;
    }
    const done = insertMention(text, mention, option);
    chosen.current = [...chosen.current, option];
    caretAfter.current = done.caret;
    setMention(null);
    setText(done.text);
    props.onDraftChange(done.text);
  };
  const send = async () => {
    if (text.trim() && (await props.onSend(text, attachmentsFor(text, chosen.current)))) {
      setText('');
      chosen.current = [];
    }
  };
  const onKeyDown = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    if (mention && !e.nativeEvent.isComposing) {
      const count = options.length;
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation(); // closes the menu, not the turn
        setMention(null);
        return;
      }
      if (count && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
        e.preventDefault();
        setHighlighted(i => (i + (e.key === 'ArrowDown' ? 1 : count - 1)) % count);
        return;
      }
      if (count && (e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey) {
        e.preventDefault();
        pick(options[Math.min(highlighted, count - 1)]);
        return;
      }
    }
    if (e.key !== 'Enter' || e.nativeEvent.isComposing || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    if (e.shiftKey !== !sendOnEnter) {
      return; // the other combination inserts a newline
    }
    e.preventDefault();
    if (!running) {
      void send();
    }
  };
  const sendKeys = sendOnEnter ? 'Enter to send, Shift+Enter for a new line' : 'Shift+Enter to send, Enter for a new line';

  if (props.readOnly) {
    const reason = props.readOnly.charAt(0).toUpperCase() + props.readOnly.slice(1);
    return (
      <div className="jp-AgentChat-composer jp-mod-readOnly" data-testid="agent-read-only" role="status">
        {`${reason}.`}
      </div>
    );
  }
  return (
    <div className="jp-AgentChat-composer">
      {mention && (
        <MentionMenu
          options={options}
          active={Math.min(highlighted, Math.max(options.length - 1, 0))}
          note={props.mentionNote ?? (options.length ? null : `Nothing matches @${mention.query}`)}
          onPick={pick}
          onHighlight={setHighlighted}
        />
      )}
      <textarea
        ref={input}
        className="jp-AgentChat-input"
        data-testid="agent-input"
        aria-label="Message the agent"
        placeholder={`Ask the agent… (${sendKeys}; @ attaches a variable or cell)`}
        rows={3}
        value={text}
        onChange={e => change(e.target.value, e.target.selectionStart ?? e.target.value.length)}
        onKeyDown={onKeyDown}
        onBlur={() => setMention(null)}
        aria-expanded={mention !== null}
        aria-autocomplete="list"
      />
      <div className="jp-AgentChat-composerButtons">
        <button
          className={`jp-AgentChat-planFirst${props.planFirst ? ' jp-mod-active' : ''}`}
          data-testid="agent-plan-first"
          aria-pressed={props.planFirst}
          aria-label="Plan first"
          title="Plan the next message into tasks, shown for approval, before any work starts"
          onClick={props.onTogglePlanFirst}
        >
          Plan first
        </button>
        <button
          className={`jp-AgentChat-iconButton jp-AgentChat-mic jp-mod-${voiceState}`}
          data-testid="agent-mic"
          data-state={voiceState}
          aria-label={MIC_LABEL[voiceState]}
          aria-pressed={voiceState === 'recording'}
          title={MIC_LABEL[voiceState]}
          disabled={voiceState === 'transcribing'}
          onClick={props.onToggleVoice}
        >
          {voiceState === 'recording' ? <stopIcon.react tag="span" /> : <micIcon.react tag="span" />}
        </button>
        {running ? (
          <button
            className="jp-mod-styled jp-mod-warn jp-AgentChat-stop"
            data-testid="agent-stop"
            aria-label="Stop the agent (Escape)"
            title="Stop (Escape)"
            onClick={props.onStop}
          >
            Stop
          </button>
        ) : (
          <button
            className="jp-mod-styled jp-mod-accept jp-AgentChat-send"
            data-testid="agent-send"
            aria-label="Send message"
            title={sendKeys}
            disabled={!text.trim()}
            onClick={() => void send()}
          >
            Send
          </button>
        )}
      </div>
    </div>
  );
}
