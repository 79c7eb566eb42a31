import { EMPTY_CONVERSATION, foldEvents, TurnReview } from '../conversation';
import { ChatModel } from '../model';
import { Conflict } from '../protocol';
import {
  applyReview,
  diffLines,
  pendingMarker,
  reviewAnchors,
  reviewButtons,
  reviewTotals,
  summaryText
} from '../review';
import { eventLog } from './events';

const NB = 'work/a.ipynb';

function change(key: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const [target, path, cellId] = key.split(':');
  return {
    key,
    target,
    op: target === 'file' ? 'write' : 'edit',
    path,
    ...(cellId ? { cell_id: cellId, cell_type: 'code' } : {}),
    added: 1,
    removed: 0,
    pending: false,
    ...fields
  };
}

function conflict(key: string, message = 'changed since'): Conflict {
  return { key, path: NB, cell_id: key.split(':')[2], message, theirs: 'x = 2', turns: 'x = 1' };
}

/** A finished turn t1 with its changes: cell c1 inserted then edited, cell c2 edited, one file written. */
function changedTurn(pending = false) {
  const e = eventLog();
  const events = [
    e('message', { turn: 't1', role: 'user', content: 'clean up' }),
    e('change', { turn: 't1', call_id: 'k1', change: change(`cell:${NB}:c1`, { op: 'insert', added: 3, pending }) }),
    e('change', { turn: 't1', call_id: 'k2', change: change(`cell:${NB}:c1`, { op: 'edit', added: 4, removed: 1, pending }) }),
    e('change', { turn: 't1', call_id: 'k3', change: change(`cell:${NB}:c2`, { added: 2, removed: 2, pending }) }),
    e('change', { turn: 't1', task: 'task-1', call_id: 'k4', change: change('file:data/out.csv', { op: 'create', added: 10 }) }),
    e('done', { turn: 't1', reason: 'completed' })
  ];
  return { e, events };
}

const reviewOf = (events: Parameters<typeof foldEvents>[1], turn = 't1'): TurnReview =>
  foldEvents(EMPTY_CONVERSATION, events).reviews[turn];

describe('review: folding change events', () => {
  it('should show a key changed twice once, adding up its calls\' lines, with its first op when it was an insert', () => {
    const review = reviewOf(changedTurn().events);
    expect(review.targets.map(t => t.key)).toEqual([`cell:${NB}:c1`, `cell:${NB}:c2`, 'file:data/out.csv']);
    expect(review.targets[0]).toMatchObject({ op: 'insert', added: 7, removed: 1, cellId: 'c1', cellType: 'code', reverted: false });
    expect(review.targets[2]).toMatchObject({ target: 'file', op: 'create', path: 'data/out.csv' });
  });

  it('should total cells, files and lines over the distinct keys', () => {
    const totals = reviewTotals(reviewOf(changedTurn().events));
    expect(totals).toEqual({ cells: 2, files: 1, added: 19, removed: 3 });
    expect(summaryText(totals)).toBe('2 cells, 1 file changed, +19 −3');
    expect(summaryText({ cells: 1, files: 0, added: 0, removed: 2 })).toBe('1 cell changed, +0 −2');
  });

  it('should keep a plan task\'s changes in its turn and never mark a finished turn running again', () => {
    const { e, events } = changedTurn();
    const state = foldEvents(EMPTY_CONVERSATION, [
      ...events,
      e('turn_review', { turn: 't1', action: 'undo', state: 'undone', user: null, reverted: [], conflicts: [], skipped: [] })
    ]);
    expect(state.reviews.t1.targets).toHaveLength(3);
    expect(state.running).toBe(false);
    expect(state.turn).toBeNull();
  });

  it('should let a run of a cell not hide its edit, a delete follow an edit, and drop a cell inserted then deleted', () => {
    const e = eventLog();
    const review = reviewOf([
      e('change', { turn: 't1', call_id: 'k1', change: change(`cell:${NB}:c1`) }),
      e('change', { turn: 't1', call_id: 'k2', change: change(`cell:${NB}:c1`, { op: 'outputs' }) }),
      e('change', { turn: 't1', call_id: 'k3', change: change(`cell:${NB}:c2`, { op: 'insert' }) }),
      e('change', { turn: 't1', call_id: 'k4', change: change(`cell:${NB}:c3`) }),
      e('change', { turn: 't1', call_id: 'k5', change: change(`cell:${NB}:c2`, { op: 'delete' }) }),
      e('change', { turn: 't1', call_id: 'k6', change: change(`cell:${NB}:c3`, { op: 'delete' }) })
    ]);
    expect(review.targets.map(t => [t.cellId, t.op])).toEqual([['c1', 'edit'], ['c3', 'delete']]);
  });

  it('should start applied, or pending when the changes wait for review', () => {
    expect(reviewOf(changedTurn().events).state).toBe('applied');
    expect(reviewOf(changedTurn(true).events.slice(0, 4)).state).toBe('pending');
  });

  it('should ignore change events without a turn or a key, and replays', () => {
    const e = eventLog();
    const first = e('change', { turn: 't1', call_id: 'k1', change: change(`cell:${NB}:c1`) });
    const state = foldEvents(EMPTY_CONVERSATION, [
      first,
      e('change', { call_id: 'k2', change: change(`cell:${NB}:c2`) }),
      e('change', { turn: 't1', call_id: 'k3' })
    ]);
    expect(Object.keys(state.reviews)).toEqual(['t1']);
    expect(state.reviews.t1.targets).toHaveLength(1);
    expect(foldEvents(state, [first])).toBe(state);
  });
});

describe('review: turn_review events', () => {
  const c1 = `cell:${NB}:c1`;
  const c2 = `cell:${NB}:c2`;
  const file = 'file:data/out.csv';
  const ada = { username: 'ada', display_name: 'Ada' };

  it('should follow undo and redo, marking what was taken back', () => {
    const { e, events } = changedTurn();
    const undone = reviewOf([
      ...events,
      e('turn_review', { turn: 't1', action: 'undo', state: 'undone', user: ada, reverted: [c1, c2, file], conflicts: [], skipped: [] })
    ]);
    expect(undone).toMatchObject({ state: 'undone', action: 'undo', user: ada });
    expect(undone.targets.every(t => t.reverted)).toBe(true);
    expect(reviewButtons(undone)).toEqual({ undo: false, redo: true, accept: false, reject: false });

    const redone = reviewOf([
      ...events,
      e('turn_review', { turn: 't1', action: 'undo', state: 'undone', user: ada, reverted: [c1, c2, file], conflicts: [], skipped: [] }),
      e('turn_review', { turn: 't1', action: 'redo', state: 'applied', user: null, applied: [c1, c2, file], conflicts: [], skipped: [] })
    ]);
    expect(redone.targets.some(t => t.reverted)).toBe(false);
    expect(reviewButtons(redone)).toEqual({ undo: true, redo: false, accept: false, reject: false });
  });

  it('should offer accept and reject while changes are pending, per cell as well as per turn', () => {
    const { e, events } = changedTurn(true);
    const pending = reviewOf(events.slice(0, 4));
    expect(reviewButtons(pending)).toEqual({ undo: false, redo: false, accept: true, reject: true });

    const oneCell = applyReview(pending, { action: 'reject', state: 'partial', reverted: [c1], cells: ['c1'] });
    expect(oneCell.targets.map(t => [t.pending, t.reverted])).toEqual([[false, true], [true, false]]);
    expect(reviewButtons(oneCell).accept).toBe(true);

    const all = reviewOf([
      ...events.slice(0, 4),
      e('turn_review', { turn: 't1', action: 'accept', state: 'accepted', user: ada, reverted: [], conflicts: [], skipped: [] })
    ]);
    expect(all.targets.every(t => !t.pending)).toBe(true);
    expect(reviewButtons(all)).toEqual({ undo: true, redo: false, accept: false, reject: false });
    expect(reviewButtons({ ...all, state: 'rejected', action: 'reject' })).toEqual({ undo: false, redo: true, accept: false, reject: false });
    const mixed = applyReview(oneCell, { action: 'accept', state: 'partial', cells: ['c2'] });
    expect(reviewButtons(mixed)).toEqual({ undo: true, redo: false, accept: false, reject: false });
  });

  it('should show the conflicts still open after each action, once per key', () => {
    const { e, events } = changedTurn();
    const withConflicts = [
      ...events,
      e('turn_review', {
        turn: 't1', action: 'undo', state: 'undone', user: ada, reverted: [file],
        conflicts: [conflict(c1), conflict(c2), conflict(c2, 'changed again')], skipped: [{ key: 'x', message: 'gone' }]
      })
    ];
    const partial = reviewOf(withConflicts);
    expect(partial.state).toBe('undone');
    expect(partial.conflicts.map(c => [c.key, c.message])).toEqual([[c1, 'changed since'], [c2, 'changed again']]);
    expect(partial.skipped).toEqual([{ key: 'x', message: 'gone' }]);
    expect(partial.targets.map(t => t.reverted)).toEqual([false, false, true]);
    expect(reviewButtons(partial)).toEqual({ undo: false, redo: true, accept: false, reject: false });

    const resolved = reviewOf([
      ...withConflicts,
      e('turn_review', { turn: 't1', action: 'resolve', state: 'undone', user: ada, reverted: [c1], conflicts: [conflict(c2)], skipped: [] })
    ]);
    expect(resolved.conflicts.map(c => c.key)).toEqual([c2]);
    expect(resolved.targets.map(t => t.reverted)).toEqual([true, false, true]);

    const none = reviewOf([
      ...withConflicts,
      e('turn_review', { turn: 't1', action: 'resolve', state: 'undone', user: ada, reverted: [c2], conflicts: [], skipped: [] })
    ]);
    expect(none.conflicts).toEqual([]);
  });

  it('should apply the answer of a call at once, and its later event to the same effect', () => {
    const { e, events } = changedTurn();
    const model = new ChatModel();
    model.apply(events);
    model.applyReview('t1', { action: 'undo', state: 'undone', reverted: [file], conflicts: [conflict(c1)] });
    expect(model.state.reviews.t1).toMatchObject({ state: 'undone', user: null });
    expect(model.state.reviews.t1.conflicts).toHaveLength(1);
    const event = e('turn_review', { turn: 't1', action: 'undo', state: 'undone', user: ada, reverted: [file], conflicts: [conflict(c1)], skipped: [] });
    model.apply([event]);
    expect(model.state.reviews.t1).toMatchObject({ state: 'undone', user: ada });
    expect(model.state.reviews.t1.targets.map(t => t.reverted)).toEqual([false, false, true]);
    model.applyReview('unknown', { action: 'undo', state: 'undone' });
    expect(model.state.reviews.unknown).toBeUndefined();
    model.dispose();
  });
});

describe('review: edit mode', () => {
  it('should take the edit mode from session events, keeping the title when they carry none', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('session', { title: 'Cleanup' }),
      e('session', { edit_mode: 'review' })
    ]);
    expect(state).toMatchObject({ title: 'Cleanup', editMode: 'review' });
    expect(foldEvents(state, [e('session', { edit_mode: 'live' })]).editMode).toBe('live');
    expect(foldEvents(EMPTY_CONVERSATION, [e('session', { title: 'x' })]).editMode).toBeNull();
  });
});

describe('review: diff lines', () => {
  it('should classify a unified diff by its hunk counts', () => {
    const diff = [
      '--- a/cell',
      '+++ b/cell',
      '@@ -1,3 +1,3 @@',
      ' import x',
      '--- a comment that starts with dashes',
      '+++ and one added with pluses',
      '',
      '\\ No newline at end of file',
      '@@ -9 +9,0 @@',
      '-gone',
      'trailing text',
      ''
    ].join('\n');
    expect(diffLines(diff).map(l => l.kind)).toEqual([
      'meta', 'meta', 'hunk', 'context', 'del', 'add', 'context', 'meta', 'hunk', 'del', 'meta'
    ]);
  });

  it('should colour +/- lines of a diff without hunk headers, and give nothing for an empty one', () => {
    expect(diffLines('+a\n-b\nc').map(l => l.kind)).toEqual(['add', 'del', 'meta']);
    expect(diffLines('')).toEqual([]);
  });
});

describe('review: pending cell markers and card places', () => {
  it('should read a cell\'s pending marker and refuse malformed ones', () => {
    expect(pendingMarker({ pending: 'insert', session: 's1', turn: 't1' })).toEqual({ pending: 'insert', session: 's1', turn: 't1' });
    expect(pendingMarker({ pending: 'edit', session: 's1', turn: 't1', extra: 1 })?.pending).toBe('edit');
    expect(pendingMarker({ pending: 'outputs', session: 's1', turn: 't1' })).toBeNull();
    expect(pendingMarker({ pending: 'delete', session: '', turn: 't1' })).toBeNull();
    expect(pendingMarker({ session: 's1', turn: 't1' })).toBeNull();
    expect(pendingMarker(undefined)).toBeNull();
    expect(pendingMarker('insert')).toBeNull();
  });

  it('should put a turn\'s card after the last item that ended it', () => {
    const { e, events } = changedTurn();
    const state = foldEvents(EMPTY_CONVERSATION, [
      ...events,
      e('message', { turn: 't2', role: 'user', content: 'again' }),
      e('error', { turn: 't2', code: 'llm_error', message: 'boom' })
    ]);
    const anchors = reviewAnchors(state.items);
    const keyOf = (turn: string) => state.items.find(i => i.key === anchors.get(turn))?.kind;
    expect(keyOf('t1')).toBe('turn_end');
    expect(keyOf('t2')).toBe('error');
  });
});
