import { activityLabel, elapsedSeconds, formatElapsed } from '../activity';
import { Activity, EMPTY_CONVERSATION, foldEvents } from '../conversation';
import { toastOffsets } from '../toasts';
import { eventLog } from './events';

const prompt = (e: ReturnType<typeof eventLog>, turn = 't1') =>
  e('message', { turn, role: 'user', content: 'Plot x', ts: 1000 });
const activity = (e: ReturnType<typeof eventLog>, text: string, fields: Record<string, unknown> = {}) =>
  e('activity', {
    turn: 't1',
    phase: 'prompt',
    text,
    step: 1,
    started: 1000,
    ts: 1000,
    prompt_tokens: null,
    progress: null,
    ...fields
  });

describe('the activity line', () => {
  it('should say the agent is waiting from the prompt until the first activity arrives', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [prompt(e)]);
    expect(state.activity).toMatchObject({ turn: 't1', phase: 'waiting', text: 'waiting for the agent', started: 1000 });
    expect(state.running).toBe(true);
  });

  it('should show the latest activity of the turn with its prompt size and progress', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      prompt(e),
      activity(e, 'reading your request'),
      activity(e, 'reading your request (prompt 1,870 tokens, 45%)', { prompt_tokens: 1870, progress: 0.45, ts: 1012 })
    ]);
    expect(state.activity).toEqual<Activity>({
      turn: 't1',
      phase: 'prompt',
      text: 'reading your request (prompt 1,870 tokens, 45%)',
      step: 1,
      started: 1000,
      ts: 1012,
      promptTokens: 1870,
      progress: 0.45
    });
  });

  it('should follow the steps and be gone when the turn ends, however it ends', () => {
    for (const end of ['done', 'error'] as const) {
      const e = eventLog();
      const running = foldEvents(EMPTY_CONVERSATION, [
        prompt(e),
        activity(e, 'reading your request'),
        activity(e, 'running notebook_insert_cell', { phase: 'tools' }),
        activity(e, 'step 2: running notebook_run_cell', { phase: 'tools', step: 2, started: 1005, ts: 1005 })
      ]);
      expect(running.activity).toMatchObject({ text: 'step 2: running notebook_run_cell', step: 2, started: 1005 });
      const ended = foldEvents(running, [e(end, { turn: 't1', reason: 'completed', code: 'x', message: 'x' })]);
      expect(ended.activity).toBeNull();
      expect(ended.running).toBe(false);
    }
  });

  it('should keep the running turn\'s activity when a queued prompt arrives or another turn ends', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      prompt(e),
      activity(e, 'reading your request'),
      prompt(e, 't2'),
      e('done', { turn: 't0', reason: 'cancelled' })
    ]);
    expect(state.activity).toMatchObject({ turn: 't1', text: 'reading your request' });
  });

  it('should leave a plan task\'s activity to the planner', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      prompt(e),
      activity(e, 'reading your request'),
      activity(e, 'running file_read', { phase: 'tools', task: 'a', attempt: 1 })
    ]);
    expect(state.activity).toMatchObject({ text: 'reading your request' });
  });

  it('should follow a plan prompt\'s plan, whose tasks show in the planner', () => {
    const e = eventLog();
    const plan = (status: string, tasks: { id: string; state: string }[]) =>
      e('plan' as never, { turn: 't1', id: 'p1', goal: 'Report', status, tasks });
    const log = [
      e('message', { turn: 't1', role: 'user', content: 'Report', plan: true, ts: 1000 }),
      plan('draft', []),
      plan('awaiting_approval', [{ id: 'a', state: 'pending' }, { id: 'b', state: 'pending' }]),
      plan('running', [{ id: 'a', state: 'running' }, { id: 'b', state: 'pending' }]),
      e('task_update' as never, { turn: 't1', task: 'a', id: 'a', state: 'done' })
    ];
    const texts = log.map((_, n) => foldEvents(EMPTY_CONVERSATION, log.slice(0, n + 1)).activity?.text);
    expect(texts).toEqual([
      'making a plan',
      'making a plan',
      'the plan waits for approval',
      'running the plan (0 of 2 tasks done)',
      'running the plan (1 of 2 tasks done)'
    ]);
    const [running, oneDone] = [4, 5].map(n => foldEvents(EMPTY_CONVERSATION, log.slice(0, n)).activity!);
    expect(oneDone.started).toBe(running.started); // the same phase: its time goes on
  });

  it('should give the same state when the log is replayed twice', () => {
    const e = eventLog();
    const log = [prompt(e), activity(e, 'reading your request'), e('done', { turn: 't1', reason: 'completed' })];
    const once = foldEvents(EMPTY_CONVERSATION, log);
    expect(foldEvents(once, log)).toBe(once);
    expect(once.activity).toBeNull();
  });
});

describe('activity time', () => {
  const shown = (ts: number, started: number): Activity => ({
    phase: 'prompt',
    text: 'reading your request',
    step: 1,
    started,
    ts,
    promptTokens: null,
    progress: null
  });

  it('should count from what the server measured, then on by the local clock', () => {
    const a = shown(1012, 1000);
    expect(elapsedSeconds(a, 50_000)).toBe(12);
    expect(elapsedSeconds(a, 53_500)).toBe(15.5);
    expect(activityLabel(a, 58_000)).toBe('reading your request · 20 s');
  });

  it('should not be thrown off by a server clock that differs from this one', () => {
    const a = shown(999_999_990, 999_999_980); // the server's clock is far ahead of the browser's
    expect(elapsedSeconds(a, 1_000)).toBe(10);
    expect(elapsedSeconds(a, 4_000)).toBe(13);
  });

  it('should read as seconds, then minutes, then hours', () => {
    expect(formatElapsed(0.4)).toBe('0 s');
    expect(formatElapsed(59.9)).toBe('59 s');
    expect(formatElapsed(65)).toBe('1 min 05 s');
    expect(formatElapsed(3725)).toBe('1 h 02 min');
  });
});

describe('toasts clear of the chat input', () => {
  const rect = (left: number, top: number, width: number, height: number) =>
    ({ left, top, width, height, right: left + width, bottom: top + height }) as DOMRect;
  const viewport = { width: 1400, height: 900 };

  it('should move the toasts beside a panel in the right sidebar', () => {
    expect(toastOffsets(rect(1000, 60, 367, 816), rect(1000, 780, 367, 96), viewport)).toEqual({ right: 408, bottom: 0 });
  });

  it('should lift the toasts above the input of a panel too wide to pass', () => {
    expect(toastOffsets(rect(300, 60, 1067, 816), rect(300, 780, 1067, 96), viewport)).toEqual({ right: 0, bottom: 128 });
  });

  it('should leave the toasts be for a hidden panel or one far from the right edge', () => {
    expect(toastOffsets(rect(0, 0, 0, 0), null, viewport)).toBeNull();
    expect(toastOffsets(rect(33, 60, 300, 816), null, viewport)).toBeNull();
  });
});
