"""Context that never overflows: long sessions with large outputs stay inside the model's window.

The scripted model sees every request over real HTTP; each is measured with litellm's counter.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_agent.engine.context import ContextWindow, shorten
from jupyter_agent.engine.history import Transcript
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, ToolResult, object_schema, tool
from jupyter_agent.tools.results import RESULT_TOOLS, ResultLog

WINDOW = 4_096
OUTPUT = 20_000  # characters of each tool result


@tool("big_output", "Print a large table.", object_schema(["n"], n={"type": "integer"}))
async def big_output(ctx: ToolContext, n: int) -> ToolResult:
    rows = [f"row {i:05d} of run {n}: value={i * n % 997:4d} label=item-{i}" for i in range(600)]
    text = "\n".join(rows)
    return ToolResult(f"RESULT-HEAD-{n}\n{text}"[:OUTPUT] + f"\nRESULT-TAIL-{n}")


def is_summary(body: dict[str, Any]) -> bool:
    return str(body["messages"][0]["content"]).startswith("Summarise the conversation")


class Model:
    """Turn n: call big_output(n), then answer "answer n"; summary requests get a numbered memory."""

    def __init__(self) -> None:
        self.summaries = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        if is_summary(body):
            self.summaries += 1
            return Reply(text=f"- MEMORY-{self.summaries}: the user ran big_output many times; all fine")
        last = body["messages"][-1]
        if last["role"] == "tool":
            n = last["content"].split("\n", 1)[0].removeprefix("RESULT-HEAD-")
            return Reply(text=f"answer {n}")
        n = str(last["content"]).rsplit(" ", 1)[-1]
        return Reply(tool_calls=[ToolCallSpec("big_output", {"n": int(n)})])


@pytest.fixture
def long_engine(engines, tmp_path):
    def build(window: int = WINDOW):
        engine = engines.engine(big_output, *RESULT_TOOLS)
        loop = engine.sessions.runner
        loop.context = ContextWindow(loop.llm, window)
        results = ResultLog(engine.store)
        loop.context_factory = lambda turn, call: ToolContext(
            session_id=turn.session.id, root_dir=tmp_path, call_id=call.id, services={"results": results}
        )
        return engine

    return build


def request_tokens(body: dict[str, Any]) -> int:
    import litellm

    return litellm.token_counter(messages=body["messages"], tools=body.get("tools"))


async def test_fifty_turns_of_large_outputs_stay_under_a_small_window(long_engine, llm) -> None:
    model = llm.default = Model()
    engine = long_engine()
    session, watch = engine.open()
    for n in range(1, 51):
        events = await engine.ask(session, watch, f"run the table for {n}")
        assert events[-1]["type"] == "done", events[-1]
    requests = llm.requests
    sizes = [request_tokens(body) for body in requests]
    assert max(sizes) <= WINDOW, max(sizes)
    # The summary was asked for, logged, and used: later requests carry the memory, not the old turns.
    compactions = [e for e in watch.events if e["type"] == "compaction"]
    assert model.summaries >= 1 and len(compactions) == model.summaries
    last = [b for b in requests if not is_summary(b)][-1]
    assert f"MEMORY-{model.summaries}" in last["messages"][0]["content"]
    assert "run the table for 3\n" not in str(last["messages"])  # an early turn lives only in the memory
    # The current turn is intact: its prompt, its call and its result's head and tail.
    prompt = [m for m in last["messages"] if m["role"] == "user"][-1]["content"]
    assert prompt.endswith("run the table for 50")
    result = last["messages"][-1]["content"]
    assert result.startswith("RESULT-HEAD-50") and result.endswith("RESULT-TAIL-50")
    assert "call read_result with call_id=" in result
    # The full history stays in the store.
    assert len([e for e in engine.store.iter_events(session.id, ("message",)) if e["role"] == "user"]) == 50


async def test_a_cut_result_is_paged_with_read_result(long_engine, llm) -> None:
    engine = long_engine()
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[ToolCallSpec("big_output", {"n": 7})]))

    def read_rest(body: dict[str, Any]) -> Reply:
        note = body["messages"][-1]["content"]
        call_id = note.split("call_id='", 1)[1].split("'", 1)[0]
        offset = int(note.split("offset=", 1)[1].split(" ", 1)[0])
        return Reply(tool_calls=[ToolCallSpec("read_result", {"call_id": call_id, "offset": offset})])

    llm.script(read_rest, Reply(text="read it"))
    events = await engine.ask(session, watch, "show me")
    results = [e for e in events if e["type"] == "tool_result"]
    assert (
        results[0]["content"].endswith("RESULT-TAIL-7") and len(results[0]["content"]) > OUTPUT
    )  # logged whole
    page = results[1]["content"]
    assert results[1]["ok"] and "characters" in page and "row 0" in page
    assert page.split("\n", 1)[0] not in llm.requests[1]["messages"][-1]["content"]  # it was the cut part


async def test_the_summary_keeps_the_system_prompt_and_the_goal_and_fails_soft(long_engine, llm) -> None:
    from jupyter_agent.testing.scripted_llm import Fail

    answers = iter([Fail(status=500, message="summariser down")])

    def model(body: dict[str, Any]) -> Any:
        if is_summary(body):  # first the summariser fails, then it answers with next to nothing
            return next(answers, Reply(text="."))
        return Model()(body)

    llm.default = model
    engine = long_engine()
    engine.sessions.runner.llm.retries = 0
    session, watch = engine.open()
    for n in range(1, 16):
        events = await engine.ask(session, watch, f"run the table for {n}")
        assert events[-1]["type"] == "done", events[-1]
    compactions = [e for e in watch.events if e["type"] == "compaction"]
    assert compactions and all(c["fallback"] for c in compactions)
    last = [b for b in llm.requests if not is_summary(b)][-1]
    system = last["messages"][0]["content"]
    assert system.startswith("You are Jupyter Agent") and "- user: run the table for" in system
    assert max(request_tokens(b) for b in llm.requests if not is_summary(b)) <= WINDOW


def test_shorten_keeps_head_and_tail_and_says_how_to_read_the_rest() -> None:
    text = "H" * 5000 + "T" * 5000
    short = shorten(text, 500, "call_9")
    assert short.startswith("H") and short.endswith("T") and len(short) < 2200
    assert "call_id='call_9'" in short and "offset=" in short
    assert shorten("small", 500) == "small"


def test_a_compaction_event_folds_the_transcript_to_the_current_turn() -> None:
    history = Transcript()
    for turn in ("t1", "t2"):
        history.apply({"type": "message", "turn": turn, "role": "user", "content": f"ask {turn}"})
        history.apply({"type": "message", "turn": turn, "role": "assistant", "content": f"answer {turn}"})
    history.apply({"type": "message", "turn": "t3", "role": "user", "content": "ask t3"})
    history.apply({"type": "compaction", "turn": "t3", "summary": "t1 and t2 were answered"})
    assert history.memory == "t1 and t2 were answered"
    assert history.messages == [{"role": "user", "content": "ask t3"}]


def test_the_embedded_models_prompt_keeps_the_memory() -> None:
    from jupyter_agent.engine.context import MEMORY_HEADING
    from jupyter_agent.local_model.adapter import local_messages

    messages = [
        {
            "role": "system",
            "content": f"You are Jupyter Agent.\n\n{MEMORY_HEADING}\n- loaded sales.csv (1,200 rows)",
        },
        {"role": "user", "content": "plot it"},
    ]
    system, user = local_messages(messages, "LOCAL PROMPT")
    assert (
        system["content"].startswith("LOCAL PROMPT")
        and "- loaded sales.csv (1,200 rows)" in system["content"]
    )
    assert user == {"role": "user", "content": "plot it"}
