import { EMPTY_CONVERSATION, foldEvents, MessageItem, ToolItem, TurnEndItem } from '../conversation';
import { ChatModel } from '../model';
import { eventLog, sampleTurn } from './events';

const messages = (items: readonly unknown[]) => (items as MessageItem[]).filter(i => i.kind === 'message');
const cards = (items: readonly unknown[]) => (items as ToolItem[]).filter(i => i.kind === 'tool').map(i => i.card);

describe('ChatModel folding', () => {
  it('should accumulate streamed tokens and thinking into one assistant message', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('message', { turn: 't', role: 'user', content: 'hi' }),
      e('thinking', { turn: 't', text: 'hmm ' }),
      e('token', { turn: 't', text: 'Hel' }),
      e('thinking', { turn: 't', text: 'ok' }),
      e('token', { turn: 't', text: 'lo' })
    ]);
    const [user, assistant] = messages(state.items);
    expect(user).toMatchObject({ role: 'user', text: 'hi' });
    expect(assistant).toMatchObject({ role: 'assistant', text: 'Hello', thinking: 'hmm ok', streaming: true });
    expect(state.running).toBe(true);
    expect(state.turn).toBe('t');
  });

  it('should let the final message replace the streamed text and stop streaming', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('token', { turn: 't', text: 'Hel' }),
      e('message', { turn: 't', role: 'assistant', content: 'Hello!' })
    ]);
    expect(messages(state.items)).toEqual([expect.objectContaining({ text: 'Hello!', streaming: false })]);
    expect(state.draft).toBeNull();
  });

  it('should start a new assistant message for tokens after a tool call', () => {
    const state = foldEvents(EMPTY_CONVERSATION, sampleTurn());
    const kinds = state.items.map(i => (i.kind === 'message' ? `${i.kind}:${i.role}` : i.kind));
    expect(kinds).toEqual(['message:user', 'message:assistant', 'tool', 'message:assistant', 'turn_end']);
    expect(messages(state.items).map(m => m.text)).toEqual(['Plot x', 'I will add a cell.', 'Done.']);
  });

  it('should follow a tool card through its lifecycle', () => {
    const turn = sampleTurn();
    const statusAt = (n: number) => cards(foldEvents(EMPTY_CONVERSATION, turn.slice(0, n)).items)[0]?.status;
    expect(statusAt(6)).toBe('pending'); // from the assistant message's tool_calls
    expect(statusAt(8)).toBe('waiting_approval');
    expect(statusAt(10)).toBe('running'); // approved
    expect(statusAt(11)).toBe('running');
    const [card] = cards(foldEvents(EMPTY_CONVERSATION, turn).items);
    expect(card).toMatchObject({
      callId: 'c1',
      name: 'notebook_insert_cell',
      status: 'done',
      ok: true,
      durationMs: 12.5,
      cellId: 'abc',
      path: 'a.ipynb',
      approval: 'once',
      arguments: { path: 'a.ipynb', source: 'plot(x)' }
    });
    expect(card.summary).toContain('Inserted code cell abc');
  });

  it('should mark a failed tool result as error', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('tool_call', { turn: 't', call_id: 'c', name: 'shell', arguments: 'not json' }),
      e('tool_result', { turn: 't', call_id: 'c', name: 'shell', ok: false, content: 'boom', data: null })
    ]);
    expect(cards(state.items)[0]).toMatchObject({ status: 'error', arguments: 'not json', summary: 'boom', data: {} });
  });

  it('should keep an approval pending until a decision arrives, then drop it', () => {
    const turn = sampleTurn();
    const pending = foldEvents(EMPTY_CONVERSATION, turn.slice(0, 9));
    expect(pending.approvals).toEqual([
      expect.objectContaining({ callId: 'c1', name: 'notebook_insert_cell', reason: 'edits a notebook' })
    ]);
    expect(foldEvents(EMPTY_CONVERSATION, turn.slice(0, 10)).approvals).toEqual([]);
  });

  it('should fail the card of a denied or timed out call', () => {
    const e = eventLog();
    const base = [
      e('approval_request', { turn: 't', call_id: 'c', name: 'shell', arguments: { cmd: 'rm -rf x' }, reason: 'shell' })
    ];
    for (const decision of ['deny', 'timeout']) {
      const state = foldEvents(EMPTY_CONVERSATION, [
        ...base,
        { ...e('approval_result', { turn: 't', call_id: 'c', decision, seq: 2 }) }
      ]);
      expect(cards(state.items)[0]).toMatchObject({ status: 'error', approval: decision });
      expect(state.approvals).toEqual([]);
    }
  });

  it('should end the turn with usage totals from done', () => {
    const state = foldEvents(EMPTY_CONVERSATION, sampleTurn());
    expect(state.running).toBe(false);
    expect(state.turn).toBeNull();
    const end = state.items[state.items.length - 1] as TurnEndItem;
    expect(end).toMatchObject({ kind: 'turn_end', reason: 'completed' });
    expect(end.usage).toMatchObject({ promptTokens: 250, completionTokens: 25, totalTokens: 275, latencyMs: 1100, calls: 2 });
    expect(end.usage?.cost).toBeCloseTo(0.003);
  });

  it('should prefer the totals carried by done over the running sum', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('usage', { turn: 't', prompt_tokens: 1, completion_tokens: 1, cost: null, latency_ms: 5 }),
      e('done', { turn: 't', reason: 'completed', usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12, cost: 0.5 } })
    ]);
    const end = state.items[0] as TurnEndItem;
    expect(end.usage).toMatchObject({ promptTokens: 10, totalTokens: 12, cost: 0.5, latencyMs: 5 });
  });

  it('should show an error with a hint, end the turn and fail unfinished calls', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('message', { turn: 't', role: 'user', content: 'go' }),
      e('tool_call', { turn: 't', call_id: 'c', name: 'shell', arguments: {} }),
      e('approval_request', { turn: 't', call_id: 'c', name: 'shell', arguments: {}, reason: '' }),
      e('error', { turn: 't', code: 'provider_error', message: 'rate limited' })
    ]);
    expect(state.running).toBe(false);
    expect(state.approvals).toEqual([]);
    expect(cards(state.items)[0].status).toBe('error');
    const error = state.items.find(i => i.kind === 'error');
    expect(error).toMatchObject({ code: 'provider_error', message: 'rate limited' });
    expect(error && 'hint' in error && error.hint).toMatch(/provider/);
  });

  it('should record a cancelled turn', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('message', { turn: 't', role: 'user', content: 'go' }),
      e('token', { turn: 't', text: 'partial' }),
      e('done', { turn: 't', reason: 'cancelled' })
    ]);
    expect(messages(state.items)[1]).toMatchObject({ text: 'partial', streaming: false });
    expect(state.items[state.items.length - 1]).toMatchObject({ kind: 'turn_end', reason: 'cancelled' });
  });

  it('should take the session title and skip event types it does not know', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('session', { title: 'Plots' }),
      e('plan' as never, { turn: 't', steps: [] })
    ]);
    expect(state.title).toBe('Plots');
    expect(state.lastSeq).toBe(2);
    expect(state.items).toEqual([]);
  });

  it('should give the same state when the log is replayed twice', () => {
    const log = sampleTurn();
    const once = foldEvents(EMPTY_CONVERSATION, log);
    expect(foldEvents(once, log)).toBe(once);
    expect(foldEvents(EMPTY_CONVERSATION, [...log, ...log])).toEqual(once);
    // Overlapping replays (as after a reconnect) too.
    const overlapped = foldEvents(foldEvents(EMPTY_CONVERSATION, log.slice(0, 7)), log.slice(3));
    expect(overlapped).toEqual(once);
  });

  it('should show what the server hid in a turn as a note before the turn ends', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('message', { turn: 't', role: 'user', content: 'use [SECRET_1a2b3c4d]' }),
      e('redaction', { turn: 't', counts: { aws_access_key: 1, email: 2 }, total: 3 }),
      e('done', { turn: 't', reason: 'completed' })
    ]);
    expect(state.items.map(i => i.kind)).toEqual(['message', 'redaction', 'turn_end']);
    expect(state.items[1]).toMatchObject({ turn: 't', counts: { aws_access_key: 1, email: 2 }, total: 3 });
    expect(state.running).toBe(false);
  });

  it('should show where the earlier conversation was summarised, with the summary', () => {
    const e = eventLog();
    const state = foldEvents(EMPTY_CONVERSATION, [
      e('message', { turn: 't', role: 'user', content: 'go on' }),
      e('compaction', { turn: 't', summary: '- loaded sales.csv', messages: 12, tokens_before: 3000, tokens_after: 40, fallback: false }),
      e('done', { turn: 't', reason: 'completed' })
    ]);
    expect(state.items.map(i => i.kind)).toEqual(['message', 'compaction', 'turn_end']);
    expect(state.items[1]).toMatchObject({ summary: '- loaded sales.csv', messages: 12, tokensBefore: 3000, tokensAfter: 40 });
    expect(state.running).toBe(false);
  });

  it('should not mutate the state it folds into', () => {
    const log = sampleTurn();
    const half = foldEvents(EMPTY_CONVERSATION, log.slice(0, 8));
    const snapshot = JSON.stringify(half);
    foldEvents(half, log.slice(8));
    expect(JSON.stringify(half)).toBe(snapshot);
  });
});

describe('ChatModel', () => {
  it('should emit changed once per batch that changes something, and count running tools', () => {
    const model = new ChatModel();
    const seen: number[] = [];
    model.changed.connect((_, state) => seen.push(state.lastSeq));
    const log = sampleTurn();
    model.apply(log.slice(0, 11));
    expect(model.runningTools).toBe(1);
    model.apply(log.slice(0, 11)); // duplicates: no change
    model.apply(log.slice(11));
    expect(seen).toEqual([11, 17]);
    expect(model.runningTools).toBe(0);
    expect(model.toolCards.map(c => c.callId)).toEqual(['c1']);
    model.reset();
    expect(model.state).toBe(EMPTY_CONVERSATION);
    model.dispose();
    expect(model.isDisposed).toBe(true);
  });

  it('should stop showing a turn as running when told the server runs nothing', () => {
    const model = new ChatModel();
    const log = sampleTurn();
    model.apply(log.slice(0, 9));
    expect(model.state.running).toBe(true);
    model.markIdle();
    expect(model.state).toMatchObject({ running: false, turn: null, approvals: [] });
    model.apply(log.slice(9)); // the log still folds afterwards
    expect(model.state.lastSeq).toBe(17);
  });
});
