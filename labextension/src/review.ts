/**
 * Review and undo of agent turns: a turn's `change` events and the outcomes of the review actions
 * taken on it (`turn_review` events, or the answers of the calls) folded into its `TurnReview`, and the
 * small decisions the review card and the pending-cell markers make. Pure: no React, no server calls.
 */
import {
  Change,
  ChangeEvent,
  ChangeOp,
  Conflict,
  ReviewAction,
  ReviewState,
  Skipped,
  TurnReviewEvent,
  UserInfo
} from './protocol';
import { ChatItem, ReviewTarget, TurnReview } from './viewModel';

/** What a review action did: a `turn_review` event, or the answer of the call that took it. */
export interface ReviewOutcome {
  action: ReviewAction;
  state: ReviewState;
  user?: UserInfo | null;
  reverted?: readonly string[];
  conflicts?: readonly Conflict[];
  skipped?: readonly Skipped[];
  /** The cells acted on, when not the whole turn. */
  cells?: readonly string[];
}

export type Reviews = Readonly<Record<string, TurnReview>>;

/** The reviews with a `change` or `turn_review` event folded in. */
export function foldReviewEvent(reviews: Reviews, event: ChangeEvent | TurnReviewEvent): Reviews {
  const turn = event.turn;
  if (typeof turn !== 'string' || !turn) {
    return reviews;
  }
  if (event.type === 'change') {
    const change = event.change;
    return change && typeof change.key === 'string' ? { ...reviews, [turn]: foldChange(reviews[turn], turn, change) } : reviews;
  }
  return { ...reviews, [turn]: applyReview(reviews[turn] ?? emptyReview(turn), event) };
}

export function emptyReview(turn: string): TurnReview {
  return { turn, targets: [], state: 'applied', action: null, user: null, conflicts: [], skipped: [] };
}

/**
 * The review with one more change of its turn. Each event tells what one tool call changed: a key seen
 * before keeps its place and adds the call's lines (the turn's net counts come with its diffs, from the
 * server), and a cell the turn inserted and then deleted is no change at all.
 */
export function foldChange(review: TurnReview | undefined, turn: string, change: Change): TurnReview {
  const base = review ?? emptyReview(turn);
  const index = base.targets.findIndex(t => t.key === change.key);
  const old = index >= 0 ? base.targets[index] : null;
  const target: ReviewTarget = {
    key: change.key,
    target: change.target === 'file' ? 'file' : 'cell',
    op: old ? mergeOp(old.op, change.op) : change.op,
    path: change.path,
    cellId: change.cell_id ?? old?.cellId,
    cellType: change.cell_type ?? old?.cellType,
    added: (old?.added ?? 0) + count(change.added),
    removed: (old?.removed ?? 0) + count(change.removed),
    pending: change.pending === true || !!old?.pending,
    reverted: false
  };
  const vanished = old?.op === 'insert' && change.op === 'delete';
  const targets = vanished
    ? base.targets.filter((_, i) => i !== index)
    : old ? base.targets.map((t, i) => (i === index ? target : t)) : [...base.targets, target];
  // Until someone acts on the turn, its state is what its changes say.
  const state: ReviewState = base.action !== null ? base.state : targets.some(t => t.pending) ? 'pending' : 'applied';
  return { ...base, targets, state };
}

/** A cell the turn inserted (a file it created) stays so; running a cell does not hide its edit. */
function mergeOp(first: ChangeOp, next: ChangeOp): ChangeOp {
  return first === 'insert' || first === 'create' || next === 'outputs' ? first : next;
}

/** The review after an action on its turn (the whole turn, or the outcome's `cells`). */
export function applyReview(review: TurnReview, outcome: ReviewOutcome): TurnReview {
  const cells = outcome.cells && outcome.cells.length ? new Set(outcome.cells) : null;
  const reverted = new Set(outcome.reverted ?? []);
  const decides = outcome.action === 'accept' || outcome.action === 'reject';
  const inEffect = outcome.state === 'applied' || outcome.state === 'accepted';
  const targets = review.targets.map(t => {
    const decided = decides && (!cells || (t.cellId !== undefined && cells.has(t.cellId)));
    const isReverted = reverted.has(t.key) ? outcome.action !== 'redo' : inEffect ? false : t.reverted;
    return decided || isReverted !== t.reverted ? { ...t, pending: decided ? false : t.pending, reverted: isReverted } : t;
  });
  return {
    ...review,
    targets,
    state: outcome.state,
    action: outcome.action,
    user: outcome.user ?? null,
    conflicts: oncePerKey(outcome.conflicts ?? []),
    skipped: outcome.skipped ?? []
  };
}

function oncePerKey(conflicts: readonly Conflict[]): Conflict[] {
  const byKey = new Map<string, Conflict>();
  conflicts.forEach(c => byKey.set(c.key, c));
  return [...byKey.values()];
}

export interface ReviewTotals {
  cells: number;
  files: number;
  added: number;
  removed: number;
}

export function reviewTotals(review: TurnReview): ReviewTotals {
  return review.targets.reduce(
    (sum, t) => ({
      cells: sum.cells + (t.target === 'cell' ? 1 : 0),
      files: sum.files + (t.target === 'file' ? 1 : 0),
      added: sum.added + t.added,
      removed: sum.removed + t.removed
    }),
    { cells: 0, files: 0, added: 0, removed: 0 }
  );
}

/** e.g. "2 cells, 1 file changed, +12 −3". */
export function summaryText(totals: ReviewTotals): string {
  const parts = [plural(totals.cells, 'cell'), plural(totals.files, 'file')].filter(p => !p.startsWith('0 '));
  return `${parts.join(', ') || 'Nothing'} changed, +${totals.added} −${totals.removed}`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export interface ReviewButtons {
  undo: boolean;
  redo: boolean;
  accept: boolean;
  reject: boolean;
}

/** Which actions the card offers in the review's state: a turn taken back (undone, rejected) can be redone. */
export function reviewButtons(review: TurnReview): ReviewButtons {
  const pending = review.state === 'pending' || review.targets.some(t => t.pending && !t.reverted);
  const takenBack = review.state === 'undone' || review.state === 'rejected';
  return { accept: pending, reject: pending, undo: !pending && !takenBack, redo: !pending && takenBack };
}

export type DiffLineKind = 'add' | 'del' | 'context' | 'hunk' | 'meta';

export interface DiffLine {
  kind: DiffLineKind;
  text: string;
}

const HUNK = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;

/**
 * The lines of a unified diff, classified. Inside a hunk its header's line counts decide, so a removed
 * line that reads "-- x" is not taken for a file header.
 */
export function diffLines(diff: string): DiffLine[] {
  const lines = diff ? diff.split('\n') : [];
  if (lines.length && lines[lines.length - 1] === '') {
    lines.pop();
  }
  let old = 0; // lines of the current hunk still to come, on each side
  let fresh = 0;
  return lines.map(text => {
    const hunk = HUNK.exec(text);
    if (hunk) {
      old = hunkCount(hunk[1]);
      fresh = hunkCount(hunk[2]);
      return { kind: 'hunk', text };
    }
    if (old > 0 || fresh > 0) {
      if (text.startsWith('\\')) {
        return { kind: 'meta', text }; // "\ No newline at end of file"
      }
      if (text.startsWith('+')) {
        fresh--;
        return { kind: 'add', text };
      }
      if (text.startsWith('-')) {
        old--;
        return { kind: 'del', text };
      }
      old--;
      fresh--;
      return { kind: 'context', text };
    }
    if (text.startsWith('+++') || text.startsWith('---') || !/^[+-]/.test(text)) {
      return { kind: 'meta', text };
    }
    return { kind: text.startsWith('+') ? 'add' : 'del', text };
  });
}

function hunkCount(text: string | undefined): number {
  return text === undefined ? 1 : parseInt(text, 10);
}

export type PendingOp = 'insert' | 'edit' | 'delete';

/** `metadata.jupyter_agent` of a cell the agent changed in review mode, until accepted or rejected. */
export interface PendingMarker {
  pending: PendingOp;
  session: string;
  turn: string;
}

const PENDING_OPS: readonly string[] = ['insert', 'edit', 'delete'];

/** The pending marker in a cell's `jupyter_agent` metadata, or null when it has none (or a malformed one). */
export function pendingMarker(metadata: unknown): PendingMarker | null {
  if (!metadata || typeof metadata !== 'object') {
    return null;
  }
  const { pending, session, turn } = metadata as Record<string, unknown>;
  const ok = typeof pending === 'string' && PENDING_OPS.includes(pending) && isId(session) && isId(turn);
  return ok ? { pending: pending as PendingOp, session: session as string, turn: turn as string } : null;
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

/** Where each turn's review card goes: after the last item that ended the turn (its usage line, or its error). */
export function reviewAnchors(items: readonly ChatItem[]): Map<string, string> {
  const anchors = new Map<string, string>();
  for (const item of items) {
    if ((item.kind === 'turn_end' || item.kind === 'error') && item.turn) {
      anchors.set(item.turn, item.key);
    }
  }
  return anchors;
}

function count(n: unknown): number {
  return typeof n === 'number' && isFinite(n) && n > 0 ? n : 0;
}
