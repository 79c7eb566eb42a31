"""What a turn is doing while people wait: ``activity`` events from the first moment, the prompt's size and
the server's prompt progress (llama.cpp's ``prompt_progress``) through litellm over real HTTP, the step and
tool, and none of it in the model's transcript."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from jupyter_agent.engine import llm as llm_module
from jupyter_agent.engine.llm import LLMClient, ModelProgress, StreamHandlers, prompt_progress
from jupyter_agent.engine.loop import Activity, _activity_text
from jupyter_agent.engine.scheduler import Scheduler
from jupyter_agent.local_model.adapter import FINAL_ANSWER, LocalAdapter
from jupyter_agent.testing.scripted_llm import PromptProgress, Reply, ScriptedLLM, ToolCallSpec
from tests.engine_kit import WAIT, Engine, EngineKit
from tests.test_engine import echo_tool, guarded_tool
from tests.test_planner import PlanModel, PlanWatch, calls, plan_reply, run_plan, spec

PROMPT = [{"role": "system", "content": "You help. " * 200}, {"role": "user", "content": "add a cell"}]
INSERT = {
    "type": "function",
    "function": {
        "name": "notebook_insert_cell",
        "description": "Insert a cell.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "source": {"type": "string"}},
            "required": ["path", "source"],
        },
    },
}


def activities(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "activity"]


def local_client(llm: ScriptedLLM, base_url: Callable[[], Any] | None = None) -> LLMClient:
    async def scripted() -> str:
        return llm.base_url

    adapter = LocalAdapter(model="local/test", base_url=base_url or scripted, served_name="scripted")
    return LLMClient(model="local/test", local=adapter, retries=0, request_timeout=10, chunk_timeout=5)


async def progress_of(client: LLMClient, tools: list[dict[str, Any]] | None = None) -> list[ModelProgress]:
    seen: list[ModelProgress] = []
    await client.stream(PROMPT, tools, StreamHandlers(on_progress=seen.append))
    return seen


# -- the words --------------------------------------------------------------------------------------------


def test_an_activity_reads_as_a_short_sentence_with_the_step_from_the_second_on() -> None:
    def text(step: int, phase: str, **kw: Any) -> str:
        args = {"tool": "", "tools": [], "prompt_tokens": None, "estimated": False, "progress": None}
        return _activity_text(step, phase, **{**args, "attempt": 0, "reason": "", **kw})

    assert text(1, "prompt") == "reading your request"
    assert (
        text(1, "prompt", prompt_tokens=1870, progress=0.4512)
        == "reading your request (prompt 1,870 tokens, 45%)"
    )
    assert (
        text(1, "prompt", prompt_tokens=1870, estimated=True) == "reading your request (prompt ~1,870 tokens)"
    )
    assert text(2, "prompt", prompt_tokens=2100) == "step 2: reading the tool results (prompt 2,100 tokens)"
    assert text(2, "tools", tools=["notebook_run_cell"]) == "step 2: running notebook_run_cell"
    assert text(1, "tools", tools=["a", "b", "a", "c", "d"]) == "running a, b, c and 1 more"
    assert text(3, "writing") == "step 3: writing the answer"
    assert text(1, "calling", tool="file_read") == "preparing the file_read call"
    assert text(1, "approval", tool="shell_run") == "waiting for approval to run shell_run"
    assert text(1, "starting") == "starting the model"
    assert text(1, "retry", attempt=1, reason="HTTP 503. Busy.") == (
        "the model call failed (HTTP 503. Busy); trying again (attempt 2)"
    )


def test_a_moving_progress_figure_goes_out_at_most_four_times_a_second_and_100_percent_always() -> None:
    sent: list[dict[str, Any]] = []

    class FakeTurn:
        def emit(self, type: str, **fields: Any) -> dict[str, Any]:
            sent.append({"type": type, **fields})
            return sent[-1]

    activity = Activity(FakeTurn())  # type: ignore[arg-type]
    activity.show("prompt")
    activity.show("prompt")  # nothing new
    activity.show("prompt", prompt_tokens=4000)  # the size is news at once
    for done in (0.1, 0.2, 0.3):
        activity.show("prompt", prompt_tokens=4000, progress=done)  # within 0.25 s: only the first
    activity.show("prompt", prompt_tokens=4000, progress=1.0)
    activity.show("writing")
    assert [e["text"] for e in sent] == [
        "reading your request",
        "reading your request (prompt 4,000 tokens)",
        "reading your request (prompt 4,000 tokens, 10%)",
        "reading your request (prompt 4,000 tokens, 100%)",
        "writing the answer",
    ]
    assert len({e["started"] for e in sent[:4]}) == 1  # one phase: its clock keeps running
    assert sent[-1]["started"] >= sent[0]["started"]
    assert sent[3]["progress"] == 1.0 and sent[3]["prompt_tokens"] == 4000 and sent[-1]["progress"] is None


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"total": 1870, "cache": 0, "processed": 935, "time_ms": 10}, (1870, 0.5)),
        ({"total": 1000, "cache": 800, "processed": 900, "time_ms": 10}, (1000, 0.5)),  # cached: not work
        ({"total": 1000, "cache": 1000, "processed": 1000}, (1000, 1.0)),
        ({"total": 0, "processed": 0}, None),
        ({"processed": 3}, None),
        ("50%", None),
    ],
)
def test_a_prompt_progress_report_is_read_as_tokens_and_the_fraction_of_the_uncached_part(
    report: Any, expected: Any
) -> None:
    class Chunk:
        prompt_progress = report

    assert prompt_progress(Chunk()) == expected


# -- through litellm over real HTTP ------------------------------------------------------------------------


async def test_the_servers_prompt_progress_reaches_the_caller_through_litellm_as_a_percentage(
    llm: ScriptedLLM,
):
    answer = json.dumps({"name": FINAL_ANSWER, "arguments": {"text": "Done."}})
    llm.script(Reply(text=answer, delay=0.4, prompt_progress=PromptProgress(total=1870, steps=4)))

    seen = await progress_of(local_client(llm), [INSERT])

    assert llm.requests[-1]["return_progress"] is True  # asked for, as llama.cpp's server wants
    reading = [p for p in seen if p.phase == "prompt" and p.progress is not None]
    # every report, not only the first (which is all litellm passes on by itself)
    assert [p.progress for p in reading] == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.01)
    assert {p.prompt_tokens for p in reading} == {1870} and not any(p.estimated for p in reading)
    assert seen[0] == ModelProgress("prompt")
    assert seen[-1] == ModelProgress("output", output="text")


async def test_without_a_look_at_the_raw_chunks_litellm_keeps_only_the_first_progress_report(
    llm: ScriptedLLM, monkeypatch
):
    """What survives litellm's own processing: the first report, on its first chunk; it drops the later
    ones (empty deltas). The client reads the raw chunks for them; this is the fallback if it cannot."""
    monkeypatch.setattr(llm_module, "tap_raw_chunks", lambda _response, _look: False)
    answer = json.dumps({"name": FINAL_ANSWER, "arguments": {"text": "Done."}})
    llm.script(Reply(text=answer, delay=0.4, prompt_progress=PromptProgress(total=1870, steps=4)))

    seen = await progress_of(local_client(llm), [INSERT])

    reading = [p.progress for p in seen if p.phase == "prompt" and p.progress is not None]
    assert reading and reading[0] == pytest.approx(0.25, abs=0.01) and len(reading) < 4, reading


async def test_a_server_without_progress_gets_an_estimated_size_and_no_percentage(llm: ScriptedLLM):
    llm.script(Reply(text="Hello.", delay=0.3))
    client = LLMClient(model="openai/scripted", options={"api_base": llm.base_url, "api_key": "sk-test"})

    seen = await progress_of(client)

    assert "return_progress" not in llm.requests[-1]  # hosted models are not asked
    estimate = next(p for p in seen if p.prompt_tokens)
    assert estimate.phase == "prompt" and estimate.estimated and estimate.progress is None
    assert 300 < estimate.prompt_tokens < 1000  # "You help. " * 200 and a little more
    assert seen[-1] == ModelProgress("output", output="text")


async def test_the_local_model_says_which_tool_it_calls_as_soon_as_the_json_names_it(llm: ScriptedLLM):
    call = {"name": "notebook_insert_cell", "arguments": {"path": "t.ipynb", "source": "1"}}
    llm.script(Reply(text=json.dumps(call), chunk_size=4))

    seen = await progress_of(local_client(llm), [INSERT])

    outputs = [p for p in seen if p.phase == "output"]
    assert outputs == [ModelProgress("output", output="tool_call", tool="notebook_insert_cell")]


async def test_a_local_model_that_is_still_starting_says_so_first(llm: ScriptedLLM):
    async def slow_start() -> str:
        await asyncio.sleep(0.3)
        return llm.base_url

    llm.script(Reply(text=json.dumps({"name": FINAL_ANSWER, "arguments": {"text": "hi"}})))
    seen = await progress_of(local_client(llm, slow_start), [INSERT])
    assert [p.phase for p in seen][:2] == ["starting", "prompt"]


# -- a turn -----------------------------------------------------------------------------------------------


@pytest.fixture
def make_engine(engines: EngineKit) -> Callable[..., Engine]:
    return engines.engine


async def test_the_first_event_after_the_prompt_says_the_agent_reads_it_then_each_step_shows(
    make_engine, llm
):
    ran: list[str] = []
    engine = make_engine(echo_tool(ran))
    session, watch = engine.open()
    llm.script(
        Reply(tool_calls=[ToolCallSpec("echo", {"text": "hi"})], delay=1.0),
        Reply(text="All done.", delay=0.2),
    )

    turn = session.submit("say hi")
    first = await watch.until(lambda e: e["type"] == "activity" and e.get("prompt_tokens"))
    assert not llm.first_chunk_times or all(t != t for t in llm.first_chunk_times)  # no answer yet (NaN)
    end = await watch.end_of(turn)

    events = watch.of(turn)
    assert events[0]["type"] == "message" and events[1]["type"] == "activity"
    assert events[1]["text"] == "reading your request" and events[1]["step"] == 1
    assert first["text"].startswith("reading your request (prompt ~") and first["progress"] is None
    assert [e["text"] for e in activities(events)][2:] == [
        "preparing the echo call",
        "running echo",
        "step 2: reading the tool results",
        activities(events)[5]["text"],
        "step 2: writing the answer",
    ]
    assert activities(events)[5]["text"].startswith("step 2: reading the tool results (prompt ~")
    assert end["type"] == "done" and ran == ["hi"]
    assert all(e["started"] <= e["ts"] for e in activities(events))
    # In the log like every event, and never in what the model reads.
    assert [e for e in session.events() if e["type"] == "activity"] == activities(events)
    assert "reading your request" not in json.dumps(session.transcript())
    assert "reading your request" not in json.dumps(llm.requests[-1]["messages"])


async def test_a_call_waiting_for_approval_says_so_until_it_is_decided(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(guarded_tool(ran))
    session, watch = engine.open()
    llm.script(
        Reply(tool_calls=[ToolCallSpec("delete_data", {"name": "old"}, id="c1")]), Reply(text="deleted")
    )

    turn = session.submit("clean up")
    waiting = await watch.until(lambda e: e["type"] == "activity" and e["phase"] == "approval")
    assert waiting["text"] == "waiting for approval to run delete_data"
    session.approve("c1", "once")
    await watch.end_of(turn)
    texts = [e["text"] for e in activities(watch.of(turn))]
    asked = texts.index("waiting for approval to run delete_data")
    assert texts[asked + 1] == "running delete_data"  # once allowed, it runs


async def test_a_retried_model_call_says_it_failed_and_tries_again(make_engine, llm):
    from jupyter_agent.testing.scripted_llm import Fail

    engine = make_engine()
    session, watch = engine.open()
    llm.script(Fail(503, "overloaded"), Reply(text="Back."))
    events = await engine.ask(session, watch, "hello?")
    retry = next(e for e in activities(events) if e["phase"] == "retry")
    assert "HTTP 503" in retry["text"] and retry["text"].endswith("trying again (attempt 2)")
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"


# -- plan tasks ---------------------------------------------------------------------------------------------


async def test_plan_tasks_show_their_activity_marked_with_the_task_and_outside_every_transcript(engines, llm):
    engine = engines.engine(echo_tool([]), watch_type=PlanWatch)
    manager = engine.sessions
    manager.planner = Scheduler(manager.runner, manager.store, approval_timeout=WAIT)
    model = PlanModel(llm)
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",))))
    model.script("a", calls("echo", text="from a"))

    session, watch = engine.open()
    turn = await run_plan(session, watch, "Do two things")  # type: ignore[arg-type]

    assert watch.terminals(turn)[0]["type"] == "done"  # type: ignore[attr-defined]
    of_tasks = activities(watch.of(turn))
    assert {e["task"] for e in of_tasks} == {"a", "b"} and all(e["attempt"] == 1 for e in of_tasks)
    assert any(e["text"] == "running echo" and e["task"] == "a" for e in of_tasks)
    assert "reading your request" not in json.dumps(session.transcript())
    task_requests = [r for r in llm.requests if not r.get("response_format")]
    assert task_requests and "reading your request" not in json.dumps([r["messages"] for r in task_requests])
