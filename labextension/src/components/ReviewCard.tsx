import * as React from 'react';
import { caretDownIcon, caretRightIcon, codeIcon, fileIcon, LabIcon, markdownIcon } from '@jupyterlab/ui-components';

import { ReviewTarget, TurnReview } from '../conversation';
import { Conflict, Resolution, TurnChanges, TurnTarget } from '../protocol';
import { diffLines, reviewButtons, reviewTotals, summaryText } from '../review';
import { baseName } from './format';
import { OpenCell } from './NotebookToolRenderer';

/** What the review cards can ask for. */
export interface ReviewActions {
  /** What a turn changed, with diffs; null when the call failed (the panel shows why). */
  loadChanges(turn: string): Promise<TurnChanges | null>;
  undo(turn: string, resolve?: Resolution): Promise<void>;
  redo(turn: string): Promise<void>;
  review(turn: string, action: 'accept' | 'reject'): Promise<void>;
  open: OpenCell;
}

export interface ReviewCardProps {
  review: TurnReview;
  actions: ReviewActions;
}

/** What a finished turn changed, target by target, with undo / redo, or accept / reject in review mode. */
export function ReviewCard({ review, actions }: ReviewCardProps): JSX.Element {
  const { turn } = review;
  const [open, setOpen] = React.useState<ReadonlySet<string>>(new Set());
  const [busy, setBusy] = React.useState(false);
  // The server's account of the turn (null data: the call failed), loaded when a diff is first shown
  // and again when one is shown after the turn changed.
  const [changes, setChanges] = React.useState<{ of: TurnReview; data: TurnChanges | null } | null>(null);
  const wanted = open.size > 0;
  React.useEffect(() => {
    if (!wanted || (changes?.of === review && changes.data)) {
      return;
    }
    let live = true;
    void actions.loadChanges(turn).then(data => live && setChanges({ of: review, data }));
    return () => {
      live = false;
    };
  }, [wanted, review]);

  const run = (call: () => Promise<void>) => {
    setBusy(true);
    void call().finally(() => setBusy(false));
  };
  const toggle = (key: string) => {
    const next = new Set(open);
    if (!next.delete(key)) {
      next.add(key);
    }
    setOpen(next);
  };
  const current = changes?.data ?? null; // the last loaded, until a newer one arrives
  const loaded = changes !== null;
  const buttons = reviewButtons(review);
  const who = review.user ? review.user.display_name || review.user.username : '';
  return (
    <div className="jp-agent-review-card" data-testid="agent-review-card" data-turn={turn} data-state={review.state}>
      <div className="jp-agent-review-header">
        <span className="jp-agent-review-summary">{summaryText(current?.totals ?? reviewTotals(review))}</span>
        <span className={`jp-agent-review-state jp-mod-${review.state}`}>{review.state}</span>
        {who && <span className="jp-agent-review-user">by {who}</span>}
        <span className="jp-agent-review-buttons">
          {buttons.accept && (
            <button className="jp-mod-styled jp-mod-accept jp-agent-review-accept" disabled={busy} onClick={() => run(() => actions.review(turn, 'accept'))}>
              Accept
            </button>
          )}
          {buttons.reject && (
            <button className="jp-mod-styled jp-mod-warn jp-agent-review-reject" disabled={busy} onClick={() => run(() => actions.review(turn, 'reject'))}>
              Reject
            </button>
          )}
          {buttons.undo && (
            <button className="jp-mod-styled jp-agent-review-undo" disabled={busy} title="Take this turn's changes back" onClick={() => run(() => actions.undo(turn))}>
              Undo
            </button>
          )}
          {buttons.redo && (
            <button className="jp-mod-styled jp-agent-review-redo" disabled={busy} title="Make this turn's changes again" onClick={() => run(() => actions.redo(turn))}>
              Redo
            </button>
          )}
        </span>
      </div>
      {review.targets.map(t => (
        <TargetRow
          key={t.key}
          target={t}
          detail={current?.targets.find(d => d.key === t.key) ?? null}
          loaded={loaded}
          expanded={open.has(t.key)}
          onToggle={() => toggle(t.key)}
          onOpen={actions.open}
        />
      ))}
      {review.conflicts.map(c => (
        <ConflictRow
          key={c.key}
          conflict={c}
          busy={busy}
          onResolve={choice => run(() => actions.undo(turn, { [c.key]: choice }))}
        />
      ))}
      {review.skipped.map(s => (
        <div key={s.key} className="jp-agent-review-skipped" data-key={s.key}>
          {s.message}
        </div>
      ))}
    </div>
  );
}

interface TargetRowProps {
  target: ReviewTarget;
  /** The server's account of it, once loaded. */
  detail: TurnTarget | null;
  /** False until the turn's changes first load: the diff says it is loading. */
  loaded: boolean;
  expanded: boolean;
  onToggle: () => void;
  onOpen: OpenCell;
}

function TargetRow({ target: t, detail, loaded, expanded, onToggle, onOpen }: TargetRowProps): JSX.Element {
  const cell = t.target === 'cell';
  const name = cell ? `${baseName(t.path)} · ${shortId(t.cellId)}` : baseName(t.path);
  const Icon: LabIcon = !cell ? fileIcon : t.cellType === 'markdown' ? markdownIcon : codeIcon;
  const Caret = expanded ? caretDownIcon : caretRightIcon;
  return (
    <div
      className="jp-agent-review-row"
      data-key={t.key}
      data-op={t.op}
      data-pending={t.pending ? 'true' : 'false'}
      data-reverted={t.reverted ? 'true' : 'false'}
    >
      <div className="jp-agent-review-rowHeader">
        <button
          className="jp-AgentChat-iconButton jp-agent-review-expand"
          aria-expanded={expanded}
          aria-label={`${expanded ? 'Hide' : 'Show'} the changes to ${name}`}
          onClick={onToggle}
        >
          <Caret.react tag="span" />
        </button>
        <Icon.react tag="span" className="jp-agent-review-icon" />
        <button
          className="jp-agent-review-name"
          title={cell ? `Open ${t.path} at cell ${t.cellId ?? ''}` : `Open ${t.path}`}
          onClick={() => onOpen(t.path, cell ? t.cellId : undefined)}
        >
          {name}
        </button>
        <span className="jp-agent-review-counts">
          <span className="jp-agent-review-op">{t.reverted ? `${t.op}, taken back` : t.pending ? `${t.op}, pending` : t.op}</span>
          <span className="jp-agent-review-added">+{detail?.added ?? t.added}</span>
          <span className="jp-agent-review-removed">−{detail?.removed ?? t.removed}</span>
        </span>
      </div>
      {expanded && <Diff detail={detail} loaded={loaded} />}
    </div>
  );
}

function Diff({ detail, loaded }: { detail: TurnTarget | null; loaded: boolean }): JSX.Element {
  const lines = detail ? diffLines(detail.diff) : [];
  const outputs = detail?.outputs;
  return (
    <div className="jp-agent-review-diff">
      {outputs && (
        <div className="jp-agent-review-outputs">
          Outputs: {outputs.before} → {outputs.after}
        </div>
      )}
      {lines.length > 0 ? (
        <pre>
          {lines.map((line, i) => (
            <span key={i} className={`jp-agent-review-line jp-mod-${line.kind}`}>
              {line.text || ' '}
            </span>
          ))}
        </pre>
      ) : (
        !outputs && <div className="jp-agent-review-noDiff">{!loaded ? 'Loading the changes…' : detail ? 'No text changed.' : 'No diff available.'}</div>
      )}
    </div>
  );
}

interface ConflictRowProps {
  conflict: Conflict;
  busy: boolean;
  onResolve: (choice: 'keep' | 'revert') => void;
}

/** A target someone changed after the turn: keep their text, or take the turn's change back over it. */
function ConflictRow({ conflict: c, busy, onResolve }: ConflictRowProps): JSX.Element {
  const where = c.cell_id ? `${baseName(c.path)} · ${shortId(c.cell_id)}` : baseName(c.path);
  return (
    <div className="jp-agent-review-conflict" data-key={c.key} role="alert">
      <div className="jp-agent-review-conflictMessage">
        <span className="jp-agent-review-conflictWhere" title={c.path}>{where}</span> {c.message}
      </div>
      <div className="jp-agent-review-conflictTexts">
        <div>
          <div className="jp-agent-review-conflictLabel">Their text now</div>
          <pre>{c.theirs}</pre>
        </div>
        <div>
          <div className="jp-agent-review-conflictLabel">What the undo puts back</div>
          <pre>{c.turns}</pre>
        </div>
      </div>
      <div className="jp-agent-review-conflictButtons">
        <button className="jp-mod-styled jp-agent-review-keep" disabled={busy} onClick={() => onResolve('keep')}>
          Keep theirs
        </button>
        <button className="jp-mod-styled jp-mod-warn jp-agent-review-revert" disabled={busy} onClick={() => onResolve('revert')}>
          Take the turn's back
        </button>
      </div>
    </div>
  );
}

/** Cell ids are long uuids: their start tells them apart in a turn. */
function shortId(cellId: string | undefined): string {
  return cellId ? cellId.slice(0, 8) : 'cell';
}
