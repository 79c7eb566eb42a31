"""The engine on its own: sessions, the agent loop, the tool router and the LLM client, without a server.

The model is the scripted OpenAI-compatible server, reached over real HTTP through litellm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from jupyter_agent.engine.history import for_model
from jupyter_agent.engine.loop import Budget
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.types import TERMINAL_EVENTS, ToolCall
from jupyter_agent.security.redaction import MASK, redact, redact_text
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Fail, Malformed, Reply, Stall, ToolCallSpec
from jupyter_agent.tools.base import Tool, ToolContext, object_schema, tool
from tests.engine_kit import WAIT, Engine, EngineKit

# -- harness ----------------------------------------------------------------------------------------------


@pytest.fixture
def make_engine(engines: EngineKit) -> Callable[..., Engine]:
    """Builds engines talking to the scripted model; every one is closed after the test."""
    return engines.engine


def echo_tool(ran: list[str]) -> Tool:
    @tool("echo", "Repeat a text.", object_schema(["text"], text={"type": "string"}))
    async def echo(ctx: ToolContext, text: str) -> str:
        ran.append(text)
        return f"echo: {text}"

    return echo


def guarded_tool(ran: list[str], policy: str = "ask") -> Tool:
    @tool(
        "delete_data", "Delete a data set.", object_schema(["name"], name={"type": "string"}), policy=policy
    )
    async def delete_data(ctx: ToolContext, name: str) -> str:
        ran.append(name)
        return f"deleted {name}"

    return delete_data


def call(tool_name: str, call_id: str, /, **arguments: Any) -> ToolCallSpec:
    return ToolCallSpec(tool_name, arguments, id=call_id)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def terminal(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in TERMINAL_EVENTS]


def tool_messages(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


def assert_every_tool_call_is_answered(messages: list[dict[str, Any]]) -> None:
    """What providers require: each assistant tool call is followed by exactly its results, nothing else."""
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            previous = messages[index - 1]
            assert previous["role"] in ("assistant", "tool"), f"orphan tool result at {index}: {messages}"
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        asked = sorted(c["id"] for c in message["tool_calls"])
        answered = []
        for later in messages[index + 1 :]:
            if later["role"] != "tool":
                break
            answered.append(later["tool_call_id"])
        assert sorted(answered) == asked, f"tool calls {asked} answered by {answered}: {messages}"


# -- a turn -----------------------------------------------------------------------------------------------


async def test_a_turn_streams_tokens_and_ends_with_exactly_one_done(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Reply(text="Hello there, notebook person"))

    events = await engine.ask(session, watch, "say hello")

    assert events[0]["type"] == "message" and events[0]["role"] == "user"
    assert events[0]["content"] == "say hello"
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert len(tokens) >= 2 and "".join(tokens) == "Hello there, notebook person"
    assert [e["type"] for e in terminal(events)] == ["done"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    assert [e["seq"] for e in watch.events] == list(range(1, len(watch.events) + 1))
    assert all(e["session"] == session.id for e in watch.events)
    answer = next(e for e in events if e["type"] == "message" and e["role"] == "assistant")
    assert answer["content"] == "Hello there, notebook person"
    assert session.events() == watch.events


async def test_the_model_receives_the_system_prompt_and_the_user_message(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Reply(text="hi"))

    await engine.ask(session, watch, "what is in data.csv?")

    messages = llm.requests[-1]["messages"]
    assert messages[0]["role"] == "system"
    assert messages[1:] == [{"role": "user", "content": "what is in data.csv?"}]


# -- tools ------------------------------------------------------------------------------------------------


async def test_two_tool_calls_in_one_reply_run_at_the_same_time_and_both_results_reach_the_model(
    make_engine, llm
):
    started = {"left": asyncio.Event(), "right": asyncio.Event()}
    spans: dict[str, tuple[float, float]] = {}

    def meeting_tool(name: str, other: str) -> Tool:
        # Each tool waits until the other one has started: run one after the other, they would time out.
        @tool(name, f"The {name} half.", object_schema(), timeout=3)
        async def half(ctx: ToolContext) -> str:
            begin = time.perf_counter()
            started[name].set()
            await started[other].wait()
            spans[name] = (begin, time.perf_counter())
            return f"{name} done"

        return half

    engine = make_engine(meeting_tool("left", "right"), meeting_tool("right", "left"))
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("left", "call_left"), call("right", "call_right")]), Reply(text="both"))

    events = await engine.ask(session, watch, "do both halves")

    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    results = {e["call_id"]: e for e in events if e["type"] == "tool_result"}
    assert results["call_left"]["ok"] and results["call_right"]["ok"], results
    (left_begin, left_end), (right_begin, right_end) = spans["left"], spans["right"]
    assert left_begin < right_end and right_begin < left_end, "the two tools did not overlap"
    assert len(llm.requests) == 2
    assert tool_messages(llm.requests[-1]["messages"]) == {
        "call_left": "left done",
        "call_right": "right done",
    }
    assert_every_tool_call_is_answered(llm.requests[-1]["messages"])


async def test_an_unknown_tool_is_reported_to_the_model_with_the_available_tools(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(echo_tool(ran))
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("telepathy", "call_1", target="me")]), Reply(text="sorry"))

    events = await engine.ask(session, watch, "read my mind")

    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False
    assert "unknown tool 'telepathy'" in result["content"] and "echo" in result["content"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    assert tool_messages(llm.requests[-1]["messages"])["call_1"] == result["content"]


async def test_a_tool_that_raises_becomes_an_error_result_and_the_turn_goes_on(make_engine, llm):
    @tool("explode", "Fail loudly.", object_schema())
    async def explode(ctx: ToolContext) -> str:
        raise RuntimeError("the flux capacitor is empty")

    engine = make_engine(explode)
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("explode", "call_1")]), Reply(text="it failed"))

    events = await engine.ask(session, watch, "try it")

    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False
    assert "RuntimeError" in result["content"] and "the flux capacitor is empty" in result["content"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    assert "flux capacitor" in tool_messages(llm.requests[-1]["messages"])["call_1"]


def counter_tool(ran: list[dict[str, Any]]) -> Tool:
    @tool(
        "count_rows",
        "Count rows.",
        object_schema(["count"], count={"type": "integer"}, label={"type": "string"}),
    )
    async def count_rows(ctx: ToolContext, count: int, label: str = "") -> str:
        ran.append({"count": count, "label": label})
        return f"{label}{count}"

    return count_rows


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"count": 3', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"count": "three"}', "count: 'three' is not of type 'integer'"),
        ('{"label": "rows"}', "'count' is a required property"),
        ('{"count": 3, "colour": "red"}', "'colour' was unexpected"),
    ],
    ids=["invalid-json", "not-an-object", "wrong-type", "missing-required", "extra-property"],
)
async def test_bad_arguments_are_refused_with_a_reason_naming_the_problem(tmp_path, arguments, expected):
    ran: list[dict[str, Any]] = []
    router = ToolRouter([counter_tool(ran)])
    ctx = ToolContext(session_id="s", root_dir=tmp_path)

    result = await router.call(ToolCall("call_1", "count_rows", arguments), ctx)

    assert result.ok is False
    assert expected in result.text
    assert result.text.startswith("Error:")
    assert ran == []


async def test_invalid_json_arguments_reach_the_model_as_an_error_it_can_fix(make_engine, llm):
    ran: list[dict[str, Any]] = []
    engine = make_engine(counter_tool(ran))
    session, watch = engine.open()
    broken = ToolCallSpec("count_rows", '{"count": 3', id="call_1")
    llm.script(
        Reply(tool_calls=[broken]), Reply(tool_calls=[call("count_rows", "call_2", count=3)]), Reply("3")
    )

    events = await engine.ask(session, watch, "count")

    shown = next(e for e in events if e["type"] == "tool_call" and e["call_id"] == "call_1")
    assert shown["arguments"] == '{"count": 3'
    results = [e for e in events if e["type"] == "tool_result"]
    assert [r["ok"] for r in results] == [False, True]
    assert "not valid JSON" in results[0]["content"]
    assert ran == [{"count": 3, "label": ""}]
    assert events[-1]["type"] == "done"


async def test_a_tool_that_overruns_its_time_limit_gives_an_error_result(tmp_path):
    cancelled = asyncio.Event()

    @tool("hang", "Never finish.", object_schema(), timeout=0.05)
    async def hang(ctx: ToolContext) -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "unreachable"

    router = ToolRouter([hang])
    result = await router.call(ToolCall("call_1", "hang", "{}"), ToolContext("s", tmp_path))

    assert result.ok is False
    assert "timed out after 0.05 s" in result.text
    assert cancelled.is_set()
    assert router.stats["hang"].to_dict()["errors"] == 1


async def test_a_tool_denied_by_policy_never_runs_and_is_not_offered_to_the_model(tmp_path):
    ran: list[str] = []
    router = ToolRouter([echo_tool(ran), guarded_tool(ran, policy="allow")], policy={"delete_data": "deny"})

    result = await router.call(ToolCall("call_1", "delete_data", '{"name": "x"}'), ToolContext("s", tmp_path))

    assert result.ok is False and "denied by the server's tool policy" in result.text
    assert ran == []
    assert [s["function"]["name"] for s in router.schemas()] == ["echo"]
    assert {t["name"]: t["policy"] for t in router.describe()}["delete_data"] == "deny"


async def test_tool_statistics_count_calls_and_errors_and_report_latency_percentiles(tmp_path):
    ran: list[str] = []
    router = ToolRouter([echo_tool(ran)])
    ctx = ToolContext("s", tmp_path)
    fresh = router.stats["echo"].to_dict()
    assert (fresh["calls"], fresh["errors"], fresh["p50_ms"], fresh["p95_ms"]) == (0, 0, None, None)

    for n in range(4):
        await router.call(ToolCall(f"ok_{n}", "echo", '{"text": "hi"}'), ctx)
    await router.call(ToolCall("bad", "echo", '{"text": 1}'), ctx)

    stats = {t["name"]: t["stats"] for t in router.describe()}["echo"]
    assert stats["calls"] == 5 and stats["errors"] == 1
    assert stats["p50_ms"] is not None and stats["p95_ms"] is not None
    assert 0 <= stats["p50_ms"] <= stats["p95_ms"]
    assert ran == ["hi"] * 4


# -- approvals --------------------------------------------------------------------------------------------


async def test_a_tool_that_asks_runs_once_a_person_approves_it(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(guarded_tool(ran))
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("delete_data", "call_1", name="old")]), Reply(text="deleted"))

    turn = session.submit("clean up")
    request = await watch.until(lambda e: e["type"] == "approval_request")
    assert request["call_id"] == "call_1" and request["name"] == "delete_data"
    assert request["arguments"] == {"name": "old"}
    assert ran == []
    session.approve("call_1", "once", user={"username": "ada"})
    end = await watch.end_of(turn)

    assert end["type"] == "done" and end["reason"] == "completed"
    assert ran == ["old"]
    decision = next(e for e in watch.of(turn) if e["type"] == "approval_result")
    assert decision["decision"] == "once" and decision["user"] == {"username": "ada"}
    assert next(e for e in watch.of(turn) if e["type"] == "tool_result")["ok"] is True


async def test_a_denied_call_does_not_run_and_the_model_is_told(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(guarded_tool(ran))
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("delete_data", "call_1", name="old")]), Reply(text="understood"))

    turn = session.submit("clean up")
    await watch.until(lambda e: e["type"] == "approval_request")
    session.approve("call_1", "deny")
    end = await watch.end_of(turn)

    assert end["type"] == "done"
    assert ran == []
    result = next(e for e in watch.of(turn) if e["type"] == "tool_result")
    assert result["ok"] is False and "denied" in result["content"]
    assert "the user denied this call" in tool_messages(llm.requests[-1]["messages"])["call_1"]


async def test_always_lets_later_calls_of_that_tool_in_the_session_run_without_asking(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(guarded_tool(ran))
    session, watch = engine.open()
    llm.script(
        Reply(tool_calls=[call("delete_data", "call_1", name="a")]),
        Reply(tool_calls=[call("delete_data", "call_2", name="b")]),
        Reply(text="deleted both"),
        Reply(tool_calls=[call("delete_data", "call_3", name="c")]),
        Reply(text="deleted c"),
    )

    first = session.submit("delete a and b")
    await watch.until(lambda e: e["type"] == "approval_request")
    session.approve("call_1", "always")
    await watch.end_of(first)
    second = await engine.ask(session, watch, "delete c")

    assert ran == ["a", "b", "c"]
    assert [e["call_id"] for e in watch.events if e["type"] == "approval_request"] == ["call_1"]
    assert second[-1]["type"] == "done"
    assert session.policy == {"delete_data": "allow"}


async def test_an_unanswered_approval_ends_the_turn_with_one_approval_timeout_error(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(guarded_tool(ran), approval_timeout=0.2)
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("delete_data", "call_1", name="old")]))

    events = await engine.ask(session, watch, "clean up")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error"
    assert ends[0]["code"] == "approval_timeout" and "delete_data" in ends[0]["message"]
    assert ran == []
    assert next(e for e in events if e["type"] == "approval_result")["decision"] == "timeout"
    assert len(llm.requests) == 1


# -- budgets ----------------------------------------------------------------------------------------------


async def test_a_turn_stops_with_reason_max_steps_when_the_model_keeps_calling_tools(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(echo_tool(ran), budget=Budget(max_steps=2))
    session, watch = engine.open()
    llm.script(
        Reply(tool_calls=[call("echo", "call_1", text="one")]),
        Reply(tool_calls=[call("echo", "call_2", text="two")]),
        Reply(text="never asked for"),
    )

    events = await engine.ask(session, watch, "loop forever")

    assert [e["type"] for e in terminal(events)] == ["done"]
    assert events[-1]["reason"] == "max_steps"
    assert events[-1]["usage"]["model_calls"] == 2
    assert ran == ["one", "two"]
    assert len(llm.requests) == 2


async def test_a_call_that_keeps_failing_the_same_way_gets_an_answer_without_tools(make_engine, llm):
    @tool("read_it", "Read a thing.", object_schema(["name"], name={"type": "string"}))
    async def read_it(ctx: ToolContext, name: str) -> str:
        raise FileNotFoundError(f"no such thing: {name}")

    engine = make_engine(read_it)
    session, watch = engine.open()
    same = [Reply(tool_calls=[call("read_it", f"call_{i}", name="x")]) for i in range(3)]
    llm.script(
        Reply(tool_calls=[call("read_it", "call_a", name="y")]),  # a different call failing: not a loop
        *same,
        Reply(text="I could not read x: it does not exist."),
    )

    events = await engine.ask(session, watch, "read x")

    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    assert [r.get("tool_choice") for r in llm.requests] == [None, None, None, None, "none"]
    assert "The same tool call has failed 3 times" in llm.requests[-1]["messages"][0]["content"]
    assert events[-2]["type"] == "message" and "could not read x" in events[-2]["content"]


async def test_the_same_call_three_times_in_a_row_gets_an_answer_without_tools(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(echo_tool(ran))
    session, watch = engine.open()
    llm.script(
        Reply(tool_calls=[call("echo", "call_1", text="a")]),
        Reply(tool_calls=[call("echo", "call_2", text="b")]),
        Reply(tool_calls=[call("echo", "call_3", text="b")]),
        Reply(tool_calls=[call("echo", "call_4", text="b")]),
        Reply(text="It says b."),
    )

    events = await engine.ask(session, watch, "echo b")

    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    assert ran == ["a", "b", "b", "b"]
    assert [r.get("tool_choice") for r in llm.requests] == [None, None, None, None, "none"]
    assert "same tool call 3 times in a row" in llm.requests[-1]["messages"][0]["content"]


async def test_a_turn_over_its_time_limit_ends_with_a_turn_timeout_error(make_engine, llm):
    stopped = asyncio.Event()

    @tool("wait_forever", "Block.", object_schema(), timeout=None)
    async def wait_forever(ctx: ToolContext) -> str:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()
        return "unreachable"

    engine = make_engine(wait_forever, budget=Budget(turn_timeout=0.3))
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("wait_forever", "call_1")]))

    events = await engine.ask(session, watch, "wait")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error" and ends[0]["code"] == "turn_timeout"
    assert "0.3 s" in ends[0]["message"]
    assert stopped.is_set()


# -- provider faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429])
async def test_a_failed_model_call_is_retried_and_the_turn_succeeds(make_engine, llm, status):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Fail(status), Reply(text="recovered"))

    events = await engine.ask(session, watch, "hello")

    assert [e["type"] for e in terminal(events)] == ["done"]
    assert "".join(e["text"] for e in events if e["type"] == "token") == "recovered"
    assert len(llm.requests) == 2


async def test_a_rate_limited_call_waits_as_long_as_retry_after_asks_then_succeeds(make_engine, llm):
    engine = make_engine(backoff=0.01, max_backoff=5)
    session, watch = engine.open()
    llm.script(Fail(429, retry_after=0.5), Reply(text="recovered"))

    started = time.monotonic()
    events = await engine.ask(session, watch, "hello")

    assert time.monotonic() - started >= 0.5  # the header wins over the 0.01 s backoff
    assert [e["type"] for e in terminal(events)] == ["done"]
    retries = [e["text"] for e in events if e["type"] == "activity" and e["phase"] == "retry"]
    assert len(retries) == 1 and retries[0].endswith("trying again (attempt 2)")
    assert len(llm.requests) == 2


async def test_a_retry_after_longer_than_the_backoff_cap_waits_only_the_cap(make_engine, llm):
    engine = make_engine(max_backoff=0.05)
    session, watch = engine.open()
    llm.script(Fail(429, retry_after=600), Reply(text="recovered"))

    events = await engine.ask(session, watch, "hello")  # the test's timeout would end a 10-minute wait

    assert [e["type"] for e in terminal(events)] == ["done"]
    assert len(llm.requests) == 2


async def test_a_refused_call_is_not_retried(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Fail(401, "invalid key"))

    events = await engine.ask(session, watch, "hello")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error" and ends[0]["code"] == "auth_failed"
    assert "Check the API key" in ends[0]["message"]
    assert len(llm.requests) == 1 and llm.pending == 0


async def test_a_stream_cut_off_before_any_text_is_retried(make_engine, llm):
    """Headers and an empty first chunk, then the connection ends with no finish_reason (a proxy dropping
    the stream): nothing was shown, so the call is retried."""
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Stall(seconds=0.1, opened=True), Reply(text="recovered"))

    events = await engine.ask(session, watch, "hello")

    assert [e["type"] for e in terminal(events)] == ["done"]
    assert "".join(e["text"] for e in events if e["type"] == "token") == "recovered"
    assert len(llm.requests) == 2


@pytest.mark.parametrize(
    ("status", "code", "explains"),
    [(500, "provider_error", "HTTP 500"), (429, "rate_limited", "rate limiting")],
)
async def test_a_model_that_keeps_failing_ends_the_turn_with_one_readable_error(
    make_engine, llm, status, code, explains
):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(*[Fail(status, message="the provider is on fire")] * 3)

    events = await engine.ask(session, watch, "hello")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error"
    assert ends[0]["code"] == code
    assert "openai/scripted" in ends[0]["message"] and explains in ends[0]["message"]
    assert "the provider is on fire" in ends[0]["message"]
    assert len(llm.requests) == 3  # the first attempt and two retries
    assert llm.pending == 0


async def test_a_fallback_model_answers_when_the_main_model_keeps_failing(make_engine, llm):
    def by_model(body: dict[str, Any]) -> Fail | Reply:
        return Fail(503) if body["model"] == "scripted" else Reply(text="the backup speaking")

    engine = make_engine(fallback_models=["openai/backup"])
    session, watch = engine.open()
    llm.script(*[by_model] * 4)

    events = await engine.ask(session, watch, "hello")

    assert [e["type"] for e in terminal(events)] == ["done"]
    assert [r["model"] for r in llm.requests] == ["scripted"] * 3 + ["backup"]
    answer = next(e for e in events if e["type"] == "message" and e["role"] == "assistant")
    assert answer["content"] == "the backup speaking"
    assert next(e for e in events if e["type"] == "usage")["model"] == "openai/backup"


async def test_a_stream_that_breaks_midway_ends_with_an_error_and_keeps_the_partial_answer(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Malformed(after_text="The answer is"))

    events = await engine.ask(session, watch, "what is it?")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error" and ends[0]["code"] == "provider_error"
    assert "broke after it started answering" in ends[0]["message"]
    partial = next(e for e in events if e["type"] == "message" and e["role"] == "assistant")
    assert partial["partial"] is True and partial["content"] == "The answer is"
    assert len(llm.requests) == 1  # output was already shown: retrying would duplicate it


async def test_a_stream_that_goes_silent_ends_with_an_error(make_engine, llm):
    engine = make_engine(chunk_timeout=0.3)
    session, watch = engine.open()
    llm.script(Stall(seconds=5, after_text="Let me"))

    events = await engine.ask(session, watch, "hello")

    ends = terminal(events)
    assert len(ends) == 1 and ends[0]["type"] == "error"
    assert "no data from the model for 0.3 s" in ends[0]["message"]
    partial = next(e for e in events if e["type"] == "message" and e["role"] == "assistant")
    assert partial["partial"] is True and partial["content"] == "Let me"


# -- cancel and queue -------------------------------------------------------------------------------------


async def test_cancel_while_the_model_streams_ends_with_done_cancelled_and_keeps_the_partial_text(
    make_engine, llm
):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Stall(seconds=WAIT, after_text="Thinking about it"), Reply(text="Sure, next one"))

    turn = session.submit("a long question")
    await watch.until(lambda e: e["type"] == "token")
    assert session.cancel() is True
    end = await watch.end_of(turn)

    events = watch.of(turn)
    assert end["type"] == "done" and end["reason"] == "cancelled", events
    assert len(terminal(events)) == 1
    partial = next(e for e in events if e["type"] == "message" and e["role"] == "assistant")
    shown = "".join(e["text"] for e in events if e["type"] == "token")
    assert partial["partial"] is True and partial["content"] == shown and shown

    after = await engine.ask(session, watch, "another question")

    assert after[-1]["type"] == "done" and after[-1]["reason"] == "completed"
    messages = llm.requests[-1]["messages"][1:]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == shown
    assert_every_tool_call_is_answered(messages)


async def test_cancel_while_a_tool_runs_leaves_a_transcript_the_model_accepts(make_engine, llm):
    started, stopped = asyncio.Event(), asyncio.Event()

    @tool("crunch", "Crunch numbers.", object_schema(), timeout=None)
    async def crunch(ctx: ToolContext) -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()
        return "unreachable"

    engine = make_engine(crunch)
    session, watch = engine.open()
    llm.script(Reply(text="Crunching.", tool_calls=[call("crunch", "call_1")]), Reply(text="ok"))

    turn = session.submit("crunch")
    await asyncio.wait_for(started.wait(), WAIT)
    session.cancel()
    end = await watch.end_of(turn)
    assert end["type"] == "done" and end["reason"] == "cancelled"
    assert stopped.is_set()
    assert not [e for e in watch.of(turn) if e["type"] == "tool_result"]

    after = await engine.ask(session, watch, "never mind")

    assert after[-1]["type"] == "done"
    messages = llm.requests[-1]["messages"]
    assert_every_tool_call_is_answered(messages)
    assert "cancelled" in tool_messages(messages)["call_1"]


async def test_cancel_with_nothing_running_changes_nothing(make_engine):
    engine = make_engine()
    session, watch = engine.open()

    assert session.cancel() is False
    assert watch.events == []


async def test_two_prompts_sent_back_to_back_are_answered_in_order(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Reply(text="first answer"), Reply(text="second answer"))

    first = session.submit("one")
    second = session.submit("two")
    await watch.end_of(second)

    assert [e["turn"] for e in terminal(watch.events)] == [first.id, second.id]
    for turn, answer in ((first, "first answer"), (second, "second answer")):
        events = watch.of(turn)
        assert [e["type"] for e in terminal(events)] == ["done"]
        assert answer in [e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant"]
    assert [e["seq"] for e in watch.events] == list(range(1, len(watch.events) + 1))


async def test_each_queued_prompt_is_answered_with_only_the_conversation_before_it(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Reply(text="first answer"), Reply(text="second answer"))

    session.submit("one")
    second = session.submit("two")
    await watch.end_of(second)

    seen = [[(m["role"], m["content"]) for m in r["messages"][1:]] for r in llm.requests]
    assert seen[0] == [("user", "one")]
    assert seen[1] == [("user", "one"), ("assistant", "first answer"), ("user", "two")]


async def test_a_prompt_sent_while_a_tool_runs_does_not_hide_that_tools_result_from_the_model(
    make_engine, llm
):
    release = asyncio.Event()

    @tool("slow_sum", "Add slowly.", object_schema(), timeout=WAIT)
    async def slow_sum(ctx: ToolContext) -> str:
        await release.wait()
        return "the sum is 42"

    engine = make_engine(slow_sum)
    session, watch = engine.open()
    llm.script(Reply(tool_calls=[call("slow_sum", "call_1")]), Reply(text="42"), Reply(text="you're welcome"))

    first = session.submit("add it up")
    await watch.until(lambda e: e["type"] == "tool_call")
    second = session.submit("thanks")
    release.set()
    await watch.end_of(second)

    assert next(e for e in watch.of(first) if e["type"] == "tool_result")["ok"] is True
    after_tool = llm.requests[1]["messages"]
    assert_every_tool_call_is_answered(after_tool)
    assert tool_messages(after_tool) == {"call_1": "the sum is 42"}


# -- persistence ------------------------------------------------------------------------------------------


async def test_events_and_transcript_survive_a_restart(make_engine, llm, tmp_path):
    ran: list[str] = []
    db = tmp_path / "agent.db"
    before = make_engine(echo_tool(ran), store=Store(db))
    session, watch = before.open()
    llm.script(Reply(tool_calls=[call("echo", "call_1", text="hi")]), Reply(text="said hi"))
    await before.ask(session, watch, "say hi")
    transcript = session.transcript()
    await before.sessions.close()

    after = make_engine(echo_tool(ran), store=Store(db))
    reloaded = after.sessions.get(session.id)

    assert reloaded.events() == watch.events
    assert reloaded.last_seq == watch.events[-1]["seq"]
    assert reloaded.transcript() == transcript
    assert [s["id"] for s in after.sessions.list()] == [session.id]
    assert not [e for e in reloaded.events() if e.get("code") == "interrupted"]


async def test_a_turn_cut_off_by_a_restart_gets_one_interrupted_error_when_the_session_loads(
    make_engine, tmp_path
):
    db = tmp_path / "agent.db"
    before = make_engine(store=Store(db))
    session = before.sessions.create()
    # What a server that died mid-turn leaves behind: the user's message, and no terminal event.
    session.emit("message", turn="lost-turn", role="user", content="are you there?")
    await before.sessions.close()

    after = make_engine(store=Store(db))
    events = after.sessions.get(session.id).events()
    await after.sessions.close()
    once_more = make_engine(store=Store(db)).sessions.get(session.id).events()

    assert [e["type"] for e in events] == ["message", "error"]
    assert events[-1]["turn"] == "lost-turn" and events[-1]["code"] == "interrupted"
    assert events[-1]["seq"] == 2
    assert once_more == events


async def test_closing_the_manager_mid_turn_leaves_exactly_one_terminal_event(make_engine, llm, tmp_path):
    db = tmp_path / "agent.db"
    before = make_engine(store=Store(db))
    session, watch = before.open()
    llm.script(Stall(seconds=WAIT, after_text="Working on"))

    turn = session.submit("a long job")
    await watch.until(lambda e: e["type"] == "token")
    await before.sessions.close()
    events = make_engine(store=Store(db)).sessions.get(session.id).events()

    ends = terminal([e for e in events if e.get("turn") == turn.id])
    assert len(ends) == 1 and ends[0]["type"] == "done" and ends[0]["reason"] == "cancelled"
    assert events[-1] == ends[0], "nothing of the turn may follow its terminal event"


# -- history and redaction --------------------------------------------------------------------------------


def test_the_model_transcript_closes_tool_calls_that_have_no_result():
    def asking(*ids: str) -> dict[str, Any]:
        calls = [{"id": i, "type": "function", "function": {"name": "echo", "arguments": "{}"}} for i in ids]
        return {"role": "assistant", "content": None, "tool_calls": calls}

    history = [
        {"role": "user", "content": "go"},
        asking("a", "b"),
        {"role": "tool", "tool_call_id": "a", "content": "done a"},
        {"role": "user", "content": "stop"},
        {"role": "tool", "tool_call_id": "b", "content": "late result"},
        asking("c"),
    ]

    messages = for_model(history)

    assert messages == [
        {"role": "user", "content": "go"},
        asking("a", "b"),
        {"role": "tool", "tool_call_id": "a", "content": "done a"},
        {"role": "tool", "tool_call_id": "b", "content": "Error: cancelled before it finished"},
        {"role": "user", "content": "stop"},
        asking("c"),
        {"role": "tool", "tool_call_id": "c", "content": "Error: cancelled before it finished"},
    ]
    assert_every_tool_call_is_answered(messages)


def test_redact_masks_secret_keys_at_any_depth():
    value = {
        "api_key": "sk-abcdefghijklmnop",
        "model": "gpt",
        "nested": {"Authorization": "Bearer xyz123456789", "items": [{"password": "hunter22"}]},
    }

    masked = redact(value)

    assert masked == {
        "api_key": MASK,
        "model": "gpt",
        "nested": {"Authorization": MASK, "items": [{"password": MASK}]},
    }
    assert value["api_key"] == "sk-abcdefghijklmnop", "the original is left alone"


def test_redact_text_scrubs_keys_and_tokens_inside_a_message():
    text = "auth failed for sk-proj-AbC123xyz789 with header Bearer abcdefgh12345678; retry"

    scrubbed = redact_text(text)

    assert scrubbed == f"auth failed for {MASK} with header {MASK}; retry"
    assert redact({"note": text}) == {"note": scrubbed}


async def test_an_answer_that_leaves_out_a_field_of_the_requested_template_is_sent_back(make_engine, llm):
    ran: list[str] = []
    engine = make_engine(echo_tool(ran))
    session, watch = engine.open()
    llm.script(
        Reply(text="The mean is about 34."),  # prose: no fields
        Reply(tool_calls=[call("echo", "call_1", text="34.65")]),  # it computes the value this time
        Reply(text="@mean[34.65] @n[891]"),
    )

    events = await engine.ask(session, watch, "Give the mean and the count as @mean[value] @n[count].")

    assert events[-1]["type"] == "done" and events[-1]["reason"] == "completed"
    answers = [e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant"]
    assert answers[0] == "The mean is about 34." and answers[-1] == "@mean[34.65] @n[891]"
    note = llm.requests[1]["messages"][-1]
    assert note["role"] == "user" and "@mean[...], @n[...]" in note["content"]
    assert llm.requests[1].get("tools")  # it may still compute what is missing
    assert all(
        m["role"] != "user" or "@mean[...]" not in str(m["content"]) for m in llm.requests[2]["messages"]
    )


async def test_an_answer_is_sent_back_at_most_twice_and_never_without_a_template(make_engine, llm):
    engine = make_engine()
    session, watch = engine.open()
    llm.script(Reply(text="no idea"), Reply(text="still none"), Reply(text="@x[]"), Reply(text="Hello!"))

    events = await engine.ask(session, watch, "Answer as @x[value].")
    assert events[-1]["type"] == "done" and len(llm.requests) == 3
    assert [e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant"][-1] == "@x[]"

    events = await engine.ask(session, watch, "Say hello; x = a@b[0] is a matrix product.")
    assert events[-1]["type"] == "done" and len(llm.requests) == 4
