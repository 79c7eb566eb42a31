/** The planner panel's pure parts: layout, critical path, plan folding, controls, transcripts, the edit model. */
import { EMPTY_CONVERSATION, foldEvents, MessageItem, PlanItem, ToolItem } from '../conversation';
import {
  addTask,
  draftFromPlan,
  findCycle,
  isChanged,
  nextTaskId,
  removeTask,
  renameTask,
  setDependencies,
  setGoal,
  toggleDependency,
  toPlanEdit,
  validateDraft
} from '../planner/editModel';
import { assignLayers, countCrossings, criticalEdgeKeys, dependencyEdges, layoutGraph, orderLayers } from '../planner/layout';
import {
  applyPlanEvent,
  applyPlanEvents,
  estimateText,
  expectedFinishText,
  formatSeconds,
  pendingApprovals,
  planControls,
  progress,
  taskControls,
  transcriptOf
} from '../planner/planState';
import { PlannerEvent, PlanSnapshot, PlanStatus, PlanTask, TaskState } from '../planner/protocol';
import { AgentEvent } from '../protocol';

function task(id: string, dependsOn: string[] = [], fields: Partial<PlanTask> = {}): PlanTask {
  return {
    id,
    title: `Task ${id}`,
    description: `Do ${id}.`,
    depends_on: dependsOn,
    tools: ['python'],
    notebooks: [],
    estimate_s: 30,
    model_estimate_s: 30,
    acceptance: `${id} is done`,
    state: 'pending',
    started: null,
    finished: null,
    actual_s: null,
    summary: '',
    error: '',
    attempt: 0,
    replaced: false,
    ...fields
  };
}

function plan(tasks: PlanTask[], status: PlanStatus = 'awaiting_approval', fields: Partial<PlanSnapshot> = {}): PlanSnapshot {
  return {
    id: 'p1',
    goal: 'Analyse the sales',
    status,
    tasks,
    critical_path: [],
    critical_path_s: 0,
    expected_finish: null,
    revision: 0,
    replans: 0,
    error: '',
    context: {},
    model: null,
    created: 1000,
    updated: 1000,
    ...fields
  };
}

/** Logged events with seq counting up from 1. */
function log(): (type: string, fields?: Record<string, unknown>) => PlannerEvent {
  let seq = 0;
  return (type, fields = {}) => ({ type, session: 's1', seq: ++seq, ts: 2000 + seq, ...fields });
}

// A diamond a -> (b, c) -> d, and e after a directly.
const DIAMOND = [task('a'), task('b', ['a']), task('c', ['a']), task('d', ['b', 'c']), task('e', ['a'])];

describe('layered layout', () => {
  it('should put each task one layer after its deepest dependency', () => {
    const layers = assignLayers([...DIAMOND, task('f', ['a', 'd'])]);
    expect(Object.fromEntries(layers)).toEqual({ a: 0, b: 1, c: 1, d: 2, e: 1, f: 3 });
  });

  it('should ignore unknown dependencies and the edge that closes a cycle', () => {
    const layers = assignLayers([task('x', ['nope']), task('y', ['z']), task('z', ['y'])]);
    expect(layers.get('x')).toBe(0);
    expect(new Set([layers.get('y'), layers.get('z')])).toEqual(new Set([0, 1]));
  });

  it('should order a layer to remove crossings', () => {
    // a1 -> b2 and a2 -> b1 cross when the layers keep their written order.
    const tasks = [task('a1'), task('a2'), task('b1', ['a2']), task('b2', ['a1'])];
    const edges = dependencyEdges(tasks);
    const written = [['a1', 'a2'], ['b1', 'b2']];
    expect(countCrossings(written, edges)).toBe(1);
    const ordered = orderLayers(written, edges);
    expect(countCrossings(ordered, edges)).toBe(0);
  });

  it('should keep the written order when nothing crosses', () => {
    const edges = dependencyEdges(DIAMOND);
    expect(orderLayers([['a'], ['b', 'c', 'e'], ['d']], edges)).toEqual([['a'], ['b', 'c', 'e'], ['d']]);
  });

  it('should place boxes in columns by layer without overlaps, and size the drawing to fit', () => {
    const layout = layoutGraph(DIAMOND);
    const box = (id: string) => layout.nodes.find(n => n.id === id)!;
    expect(layout.layers.map(l => l.length)).toEqual([1, 3, 1]);
    expect(box('a').x).toBeLessThan(box('b').x);
    expect(box('b').x).toBe(box('c').x);
    expect(box('b').x).toBeLessThan(box('d').x);
    const column = ['b', 'c', 'e'].map(box).sort((p, q) => p.y - q.y);
    for (let i = 1; i < column.length; i++) {
      expect(column[i].y).toBeGreaterThanOrEqual(column[i - 1].y + column[i - 1].height);
    }
    for (const n of layout.nodes) {
      expect(n.x + n.width).toBeLessThanOrEqual(layout.width);
      expect(n.y + n.height).toBeLessThanOrEqual(layout.height);
    }
    // A single-task column is centred on the tallest one.
    expect(box('a').y + box('a').height / 2).toBeCloseTo(box('c').y + box('c').height / 2);
    expect(layout.edges).toHaveLength(5);
  });

  it('should mark the edges of the critical path, and only those', () => {
    const layout = layoutGraph(DIAMOND, ['a', 'c', 'd']);
    const critical = layout.edges.filter(e => e.critical).map(e => `${e.from}>${e.to}`);
    expect(critical.sort()).toEqual(['a>c', 'c>d']);
    expect([...criticalEdgeKeys(['a', 'c', 'd'])]).toEqual(['a>c', 'c>d']);
    expect(criticalEdgeKeys(['a']).size).toBe(0);
  });

  it('should lay out nothing for no tasks', () => {
    expect(layoutGraph([])).toMatchObject({ nodes: [], edges: [], width: 0, height: 0 });
  });
});

describe('plan state', () => {
  it('should replace the plan on a plan event and change one task on a task update', () => {
    const e = log();
    const snapshot = plan([task('a'), task('b', ['a'])], 'running', { critical_path: ['a', 'b'] });
    let state = applyPlanEvent(null, e('plan', { turn: 'T', ...snapshot }));
    expect(state).toEqual(snapshot); // the envelope (type, seq, ts, turn...) is not part of the plan
    state = applyPlanEvents(state, [
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'running', started: 5000, attempt: 1 }),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'done', finished: 5012, actual_s: 12, summary: 'ok' })
    ]);
    expect(state!.tasks[0]).toMatchObject({ state: 'done', started: 5000, actual_s: 12, summary: 'ok', attempt: 1 });
    expect(state!.tasks[1].state).toBe('pending');
    expect(applyPlanEvent(null, e('task_update', { id: 'a', state: 'done' }))).toBeNull();
  });

  it('should update the live task, not the one re-planned away with the same id', () => {
    const before = plan([task('a', [], { state: 'failed', replaced: true }), task('a', [], { state: 'pending' })], 'running');
    const after = applyPlanEvent(before, log()('task_update', { id: 'a', task: 'a', state: 'running' }))!;
    expect(after.tasks.map(t => t.state)).toEqual(['failed', 'running']);
  });

  it('should count progress over the tasks that were not re-planned away', () => {
    const states: TaskState[] = ['done', 'skipped', 'running', 'failed', 'pending'];
    const p = plan([...states.map((s, i) => task(`t${i}`, [], { state: s })), task('old', [], { state: 'failed', replaced: true })]);
    expect(progress(p)).toEqual({ done: 2, finished: 3, running: 1, total: 5, fraction: 0.6 });
  });

  it('should offer the plan controls that apply in its status', () => {
    const tasks = [task('a')];
    expect(planControls(plan(tasks, 'awaiting_approval'))).toEqual({ approve: true, edit: true, pause: false, resume: false, cancel: true });
    expect(planControls(plan(tasks, 'running'))).toMatchObject({ approve: false, edit: true, pause: true, resume: false, cancel: true });
    expect(planControls(plan(tasks, 'paused'))).toMatchObject({ pause: false, resume: true, cancel: true });
    expect(planControls(plan(tasks, 'interrupted'))).toMatchObject({ resume: true, cancel: false, edit: false });
    expect(planControls(plan(tasks, 'done'))).toEqual({ approve: false, edit: false, pause: false, resume: false, cancel: false });
    expect(planControls(plan([task('a', [], { state: 'running' })], 'running')).edit).toBe(false); // nothing left to edit
    expect(planControls(null).approve).toBe(false);
  });

  it('should offer the task controls that apply in its state', () => {
    const running = plan([], 'running');
    expect(taskControls(running, task('a', [], { state: 'running' }))).toEqual({ retry: false, skip: true, cancel: true });
    expect(taskControls(running, task('a', [], { state: 'failed' }))).toEqual({ retry: true, skip: false, cancel: false });
    expect(taskControls(running, task('a', [], { state: 'done' }))).toEqual({ retry: false, skip: false, cancel: false });
    expect(taskControls(plan([], 'failed'), task('a', [], { state: 'cancelled' })).retry).toBe(true);
    expect(taskControls(plan([], 'failed'), task('a', [], { state: 'pending' })).skip).toBe(false);
    expect(taskControls(running, task('a', [], { state: 'failed', replaced: true })).retry).toBe(false);
  });

  it("should fold a task's events into its transcript, tokens as text and tool calls with results", () => {
    const e = log();
    const events = [
      e('plan', { turn: 'T', ...plan([task('a'), task('b')], 'running') }),
      e('token', { turn: 'T', task: 'a', attempt: 1, text: 'Loading ' }),
      e('token', { turn: 'T', task: 'b', attempt: 1, text: 'Other task' }),
      e('token', { turn: 'T', task: 'a', attempt: 1, text: 'the data.' }),
      e('message', { turn: 'T', task: 'a', attempt: 1, role: 'assistant', content: 'Loading the data.', tool_calls: [{ id: 'c1', name: 'python', arguments: '{}' }] }),
      e('tool_call', { turn: 'T', task: 'a', attempt: 1, call_id: 'c1', name: 'python', arguments: { code: 'load()' } }),
      e('tool_result', { turn: 'T', task: 'a', attempt: 1, call_id: 'c1', name: 'python', ok: true, content: '42 rows', data: {} }),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'done' }),
      e('message', { turn: 'T', task: 'a', attempt: 1, role: 'assistant', content: 'Loaded 42 rows.' })
    ];
    const transcript = transcriptOf(events, 'a');
    const texts = transcript.items.filter(i => i.kind === 'message').map(i => (i as MessageItem).text);
    expect(texts).toEqual(['Loading the data.', 'Loaded 42 rows.']);
    const cards = transcript.items.filter(i => i.kind === 'tool').map(i => (i as ToolItem).card);
    expect(cards).toHaveLength(1);
    expect(cards[0]).toMatchObject({ name: 'python', status: 'done', summary: '42 rows', arguments: { code: 'load()' } });
    expect(transcriptOf(events, 'zzz').items).toEqual([]);
  });

  it("should offer the running tasks' unanswered approvals of their current attempt only", () => {
    const e = log();
    const ask = (callId: string, fields: Record<string, unknown>) =>
      e('approval_request', { turn: 'T', task: 'a', call_id: callId, name: 'shell_run', arguments: { command: 'ls' }, reason: 'asks', ...fields });
    const events = [
      ask('old-plan', { attempt: 1 }), // ts 2001: a task 'a' of an earlier plan, never answered
      ask('first-try', { attempt: 1, ts: 3001 }), // this plan's first attempt, which failed while it waited
      ask('answered', { attempt: 2, ts: 3101 }),
      e('approval_result', { turn: 'T', task: 'a', attempt: 2, call_id: 'answered', decision: 'once', ts: 3102 }),
      ask('waiting', { attempt: 2, ts: 3103 }),
      ask('other-task', { task: 'b', attempt: 2, ts: 3104 })
    ];
    const running = task('a', [], { state: 'running', attempt: 2, started: 3100 });
    const other = task('b', [], { state: 'running', attempt: 2, started: 3100 });
    const pending = pendingApprovals(events, [running, other, task('c')]);
    expect([...pending.keys()]).toEqual(['a', 'b']);
    expect(pending.get('a')).toEqual([expect.objectContaining({ callId: 'waiting', name: 'shell_run', arguments: { command: 'ls' } })]);
    expect(pendingApprovals(events, [{ ...running, state: 'failed' }]).size).toBe(0);
    const answered = [...events, e('approval_result', { turn: 'T', task: 'a', attempt: 2, call_id: 'waiting', decision: 'deny', ts: 3105 })];
    expect(pendingApprovals(answered, [running]).size).toBe(0);
  });

  it('should tell estimate against actual time', () => {
    expect(estimateText(task('a'), 100)).toBe('est 30 s');
    expect(estimateText(task('a', [], { state: 'running', started: 100 }), 108)).toBe('est 30 s · 8 s so far');
    expect(estimateText(task('a', [], { state: 'done', actual_s: 75 }), 0)).toBe('est 30 s · took 1 min 15 s');
    expect(formatSeconds(3725)).toBe('1 h 2 min');
    expect(formatSeconds(null)).toBe('–');
  });

  it('should tell the expected finish while the plan runs, and nothing once it is over', () => {
    const running = plan([], 'running', { expected_finish: 1090 });
    expect(expectedFinishText(running, 1000)).toMatch(/^in 1 min 30 s \(.+\)$/);
    expect(expectedFinishText({ ...running, status: 'done' }, 1000)).toBe('');
    expect(expectedFinishText({ ...running, expected_finish: null }, 1000)).toBe('unknown');
  });
});

describe('the plan card in the chat', () => {
  it('should show one card per plan, kept current, and leave task turns out of the conversation', () => {
    const e = log();
    const tasks = [task('a'), task('b', ['a'])];
    const events = [
      e('message', { turn: 'T', role: 'user', content: 'Analyse the sales', plan: true }),
      e('plan', { turn: 'T', ...plan([], 'draft') }),
      e('plan', { turn: 'T', ...plan(tasks, 'awaiting_approval') }),
      e('plan', { turn: 'T', ...plan(tasks, 'running') }),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'running' }),
      e('token', { turn: 'T', task: 'a', attempt: 1, text: 'task text' }),
      e('message', { turn: 'T', task: 'a', attempt: 1, role: 'assistant', content: 'task text' }),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'done' })
    ] as unknown as AgentEvent[];
    const state = foldEvents(EMPTY_CONVERSATION, events);
    expect(state.items.map(i => i.kind)).toEqual(['message', 'plan']);
    const card = state.items[1] as PlanItem;
    expect(card).toMatchObject({ planId: 'p1', goal: 'Analyse the sales', status: 'running', tasks: { a: 'done', b: 'pending' } });
    expect(state.running).toBe(true);
    expect(state.draft).toBeNull();
  });

  it("should ask a task's approval in the chat, naming the task, until someone answers it", () => {
    const e = log();
    const tasks = [task('a'), task('b', ['a'])];
    const asking = [
      e('message', { turn: 'T', role: 'user', content: 'Analyse the sales', plan: true }),
      e('plan', { turn: 'T', ...plan(tasks, 'running') }),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'running' }),
      e('tool_call', { turn: 'T', task: 'a', attempt: 1, call_id: 'c1', name: 'shell_run', arguments: { command: 'ls' } }),
      e('tool_status', { turn: 'T', task: 'a', attempt: 1, call_id: 'c1', status: 'waiting_approval' }),
      e('approval_request', {
        turn: 'T', task: 'a', attempt: 1, call_id: 'c1', name: 'shell_run', arguments: { command: 'ls' }, reason: 'shell_run asks before it runs'
      })
    ] as unknown as AgentEvent[];
    const waiting = foldEvents(EMPTY_CONVERSATION, asking);
    expect(waiting.approvals).toEqual([
      {
        callId: 'c1',
        name: 'shell_run',
        arguments: { command: 'ls' },
        reason: 'shell_run asks before it runs',
        turn: 'T',
        task: { id: 'a', title: 'Task a' }
      }
    ]);
    expect(waiting.items.map(i => i.kind)).toEqual(['message', 'plan']); // the call itself shows in the planner

    const answer = e('approval_result', { turn: 'T', task: 'a', attempt: 1, call_id: 'c1', decision: 'deny', user: { username: 'bo' } });
    const answered = foldEvents(waiting, [answer as unknown as AgentEvent]);
    expect(answered.approvals).toEqual([]);
    expect(answered.items.map(i => i.kind)).toEqual(['message', 'plan']);
  });

  it('should drop the approval of a task that stopped running, and keep the others', () => {
    const e = log();
    const ask = (taskId: string, callId: string) =>
      e('approval_request', { turn: 'T', task: taskId, attempt: 1, call_id: callId, name: 'shell_run', arguments: {}, reason: '' });
    const events = [
      e('plan', { turn: 'T', ...plan([task('a'), task('b')], 'running') }),
      ask('a', 'ca'),
      ask('b', 'cb'),
      e('task_update', { turn: 'T', task: 'a', id: 'a', state: 'cancelled' })
    ] as unknown as AgentEvent[];
    const state = foldEvents(EMPTY_CONVERSATION, events);
    expect(state.approvals.map(a => [a.callId, a.task?.id])).toEqual([['cb', 'b']]);
    const ended = foldEvents(state, [e('done', { turn: 'T', reason: 'cancelled' }) as unknown as AgentEvent]);
    expect(ended.approvals).toEqual([]);
  });
});

describe('plan edits', () => {
  const running = plan(
    [task('t1', [], { state: 'done' }), task('t2', ['t1'], { state: 'pending' }), task('t3', ['t2'])],
    'running'
  );

  it('should lock the tasks that started and let the others change', () => {
    let draft = draftFromPlan(running);
    expect(draft.tasks.map(t => t.locked)).toEqual([true, false, false]);
    expect(draft.goalEditable).toBe(false);
    draft = renameTask(draft, 't1', 'Changed');
    draft = setGoal(draft, 'Other goal');
    expect(draft.tasks[0].title).toBe('Task t1');
    expect(draft.goal).toBe('Analyse the sales');
    expect(isChanged(draft, running)).toBe(false);
    draft = renameTask(draft, 't2', 'Clean the data');
    expect(isChanged(draft, running)).toBe(true);
  });

  it('should send started tasks unchanged, changed ones without an estimate, and new ones', () => {
    let draft = draftFromPlan(running);
    draft = renameTask(draft, 't2', '  Clean the data ');
    draft = addTask(draft, { title: 'Plot', description: 'A bar chart', depends_on: ['t2', 'unknown'] });
    draft = removeTask(draft, 't3');
    expect(toPlanEdit(draft)).toEqual({
      tasks: [
        { id: 't1', title: 'Task t1', description: 'Do t1.', depends_on: [] },
        {
          id: 't2',
          title: 'Clean the data',
          description: 'Do t2.',
          depends_on: ['t1'],
          tools: ['python'],
          notebooks: [],
          acceptance: 't2 is done'
        },
        { id: 't4', title: 'Plot', description: 'A bar chart', depends_on: ['t2'] }
      ]
    });
  });

  it('should drop a removed task from the dependencies of the others, and never remove a started one', () => {
    let draft = draftFromPlan(running);
    draft = removeTask(draft, 't2');
    expect(draft.tasks.map(t => t.id)).toEqual(['t1', 't3']);
    expect(draft.tasks[1].depends_on).toEqual([]);
    expect(removeTask(draft, 't1')).toBe(draft);
  });

  it('should send the goal only while the plan waits for approval', () => {
    const waiting = plan([task('t1')], 'awaiting_approval');
    const draft = setGoal(draftFromPlan(waiting), ' New goal ');
    expect(toPlanEdit(draft).goal).toBe('New goal');
    expect(toPlanEdit(draftFromPlan(running)).goal).toBeUndefined();
  });

  it('should find the problems the server would refuse', () => {
    let draft = draftFromPlan(plan([task('t1'), task('t2', ['t1'])]));
    expect(validateDraft(draft)).toEqual([]);
    draft = toggleDependency(draft, 't1', 't2');
    expect(validateDraft(draft)).toEqual(['The dependencies form a cycle: t1 → t2 → t1.']);
    draft = toggleDependency(draft, 't1', 't2');
    draft = renameTask(draft, 't2', ' ');
    draft = setDependencies(draft, 't1', ['t1', 'ghost']);
    expect(draft.tasks[0].depends_on).toEqual(['ghost']); // a task never depends on itself
    expect(validateDraft(draft)).toEqual(['Task t1 depends on ghost, which is not in the plan.', 'Task t2 needs a title.']);
    expect(validateDraft({ ...draft, tasks: [] })).toContain('The plan needs at least one task.');
  });

  it('should give new tasks ids never used in the plan, re-planned ones included', () => {
    expect(nextTaskId(['t1', 't2'])).toBe('t3');
    expect(nextTaskId(['load', 'clean'])).toBe('t3');
    expect(nextTaskId(['t9', 'x'])).toBe('t10');
    const replanned = plan([task('t1'), task('t5', [], { replaced: true, state: 'failed' })], 'running');
    expect(addTask(draftFromPlan(replanned), { title: 'New' }).tasks.map(t => t.id)).toEqual(['t1', 't6']);
  });

  it('should find cycles', () => {
    expect(findCycle([task('a', ['b']), task('b', ['c']), task('c', ['a'])])).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(DIAMOND)).toBeNull();
  });
});
