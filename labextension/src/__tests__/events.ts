/** Builds a session's event log for tests: `seq` counts up from 1 unless given. */
import { AgentEvent } from '../protocol';

export function eventLog(): (type: AgentEvent['type'], fields?: Record<string, unknown>) => AgentEvent {
  let seq = 0;
  return (type, fields = {}) => {
    seq = typeof fields.seq === 'number' ? fields.seq : seq + 1;
    return { type, session: 's1', seq, ts: 1700000000 + seq, ...fields } as unknown as AgentEvent;
  };
}

/** A full turn: prompt, thinking, streamed answer with a tool call, approval, result, usage, done. */
export function sampleTurn(): AgentEvent[] {
  const e = eventLog();
  const turn = 't1';
  return [
    e('message', { turn, role: 'user', content: 'Plot x', user: { username: 'ada' }, context: { notebook: 'a.ipynb' } }),
    e('thinking', { turn, text: 'The user ' }),
    e('thinking', { turn, text: 'wants a plot.' }),
    e('token', { turn, text: 'I will ' }),
    e('token', { turn, text: 'add a cell.' }),
    e('message', {
      turn,
      role: 'assistant',
      content: 'I will add a cell.',
      tool_calls: [{ id: 'c1', name: 'notebook_insert_cell', arguments: '{"path":"a.ipynb"}' }]
    }),
    e('tool_call', { turn, call_id: 'c1', name: 'notebook_insert_cell', arguments: { path: 'a.ipynb', source: 'plot(x)' } }),
    e('tool_status', { turn, call_id: 'c1', status: 'waiting_approval' }),
    e('approval_request', {
      turn, call_id: 'c1', name: 'notebook_insert_cell', arguments: { path: 'a.ipynb', source: 'plot(x)' }, reason: 'edits a notebook'
    }),
    e('approval_result', { turn, call_id: 'c1', decision: 'once', user: { username: 'ada' } }),
    e('tool_status', { turn, call_id: 'c1', status: 'running' }),
    e('tool_result', {
      turn, call_id: 'c1', name: 'notebook_insert_cell', ok: true, content: 'Inserted code cell abc at index 0 of a.ipynb.',
      data: { path: 'a.ipynb', cell_id: 'abc', index: 0 }, images: [], duration_ms: 12.5
    }),
    e('usage', { turn, model: 'm', prompt_tokens: 100, completion_tokens: 20, total_tokens: 120, cost: 0.001, latency_ms: 800, ttft_ms: 200 }),
    e('token', { turn, text: 'Done.' }),
    e('message', { turn, role: 'assistant', content: 'Done.' }),
    e('usage', { turn, model: 'm', prompt_tokens: 150, completion_tokens: 5, total_tokens: 155, cost: 0.002, latency_ms: 300, ttft_ms: 100 }),
    e('done', { turn, reason: 'completed' })
  ];
}
