"""The scripted OpenAI-compatible server, exercised through real litellm over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from jupyter_agent.testing.scripted_llm import (
    Fail,
    Malformed,
    PromptProgress,
    Reply,
    ScriptedLLM,
    Stall,
    ToolCallSpec,
    Transcript,
    split_text,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_cell",
            "description": "Read a cell.",
            "parameters": {"type": "object", "properties": {"index": {"type": "integer"}}},
        },
    }
]


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


async def _open_stream(llm: ScriptedLLM | SimpleNamespace, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("max_retries", 0)  # the openai SDK otherwise retries 5xx/429/timeouts itself
    return await litellm.acompletion(
        model="openai/scripted", api_base=llm.base_url, api_key="sk-test", stream=True, **kwargs
    )


async def _collect(llm: ScriptedLLM | SimpleNamespace, **kwargs: Any) -> list[Any]:
    """Return every chunk litellm yields for one streamed completion."""
    return [chunk async for chunk in await _open_stream(llm, **kwargs)]


def _content(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def _tool_calls(chunks: list[Any]) -> tuple[dict[int, dict[str, str]], dict[int, int]]:
    """Reassemble streamed tool calls by index; also count the deltas each index arrived in."""
    calls: dict[int, dict[str, str]] = {}
    deltas: dict[int, int] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            deltas[tc.index] = deltas.get(tc.index, 0) + 1
            call["id"] = tc.id or call["id"]
            call["name"] += tc.function.name or ""
            call["arguments"] += tc.function.arguments or ""
    return calls, deltas


def _finish_reason(chunks: list[Any]) -> str | None:
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return reasons[-1] if reasons else None


def test_split_text() -> None:
    assert split_text("Hello world") == ["Hello", " world"]
    assert split_text(" a  b \n") == [" a", "  b", " \n"]
    assert split_text("abcdefg", 3) == ["abc", "def", "g"]
    assert split_text("") == []


@pytest.mark.asyncio
async def test_streamed_text_arrives_in_several_deltas(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="Hello big wide world."), Reply(text="abcdefg", chunk_size=3))
    chunks = await _collect(llm)
    pieces = _content(chunks)
    assert pieces == ["Hello", " big", " wide", " world."]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert _finish_reason(chunks) == "stop"
    assert _content(await _collect(llm)) == ["abc", "def", "g"]


@pytest.mark.asyncio
async def test_default_reply_when_queue_is_empty(llm: ScriptedLLM) -> None:
    assert "".join(_content(await _collect(llm))) == "OK"
    llm.default = Reply(text="changed default")
    assert "".join(_content(await _collect(llm))) == "changed default"
    llm.default = lambda body: Reply(text=f"echo: {body['messages'][-1]['content']}")
    assert (
        "".join(_content(await _collect(llm, messages=[{"role": "user", "content": "ping"}]))) == "echo: ping"
    )


@pytest.mark.asyncio
async def test_tool_call_is_split_and_reassembles(llm: ScriptedLLM) -> None:
    args = {"index": 3, "note": "a longer argument string"}
    llm.script(Reply(text="Let me look.", tool_calls=[ToolCallSpec("read_cell", args, id="call_abc")]))
    chunks = await _collect(llm, tools=TOOLS)
    calls, deltas = _tool_calls(chunks)
    assert calls == {0: {"id": "call_abc", "name": "read_cell", "arguments": json.dumps(args)}}
    assert deltas[0] >= 3  # the head (id + name) plus at least two argument pieces
    assert "".join(_content(chunks)) == "Let me look."
    assert _finish_reason(chunks) == "tool_calls"


@pytest.mark.asyncio
async def test_two_tool_calls_and_verbatim_invalid_arguments(llm: ScriptedLLM) -> None:
    llm.script(
        Reply(tool_calls=[ToolCallSpec("read_cell", {"index": 0}), ToolCallSpec("run", '{"code": "1+')])
    )
    calls, deltas = _tool_calls(await _collect(llm, tools=TOOLS))
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "read_cell" and json.loads(calls[0]["arguments"]) == {"index": 0}
    assert calls[1]["name"] == "run" and calls[1]["arguments"] == '{"code": "1+'
    assert calls[0]["id"].startswith("call_") and calls[1]["id"].startswith("call_")
    assert calls[0]["id"] != calls[1]["id"]
    assert min(deltas.values()) >= 2


@pytest.mark.asyncio
async def test_thinking_arrives_as_reasoning_content(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="Answer.", thinking="Let me think about it."))
    chunks = await _collect(llm)
    reasoning = [getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks if c.choices]
    reasoning = [r for r in reasoning if r]
    assert len(reasoning) >= 2
    assert "".join(reasoning) == "Let me think about it."
    assert "".join(_content(chunks)) == "Answer."


@pytest.mark.asyncio
async def test_usage_chunk_when_requested(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="counted", usage=(7, 3)))
    chunks = await _collect(llm, stream_options={"include_usage": True})
    usages = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert (usages[-1].prompt_tokens, usages[-1].completion_tokens, usages[-1].total_tokens) == (7, 3, 10)


@pytest.mark.asyncio
async def test_non_streaming_completion(llm: ScriptedLLM) -> None:
    llm.script(
        Reply(text="Full answer", thinking="hmm", tool_calls=[ToolCallSpec("read_cell", {"index": 1})])
    )
    response = await litellm.acompletion(
        model="openai/scripted", api_base=llm.base_url, api_key="sk-test", messages=MESSAGES, max_retries=0
    )
    message = response.choices[0].message
    assert message.content == "Full answer"
    assert message.reasoning_content == "hmm"
    assert message.tool_calls[0].function.name == "read_cell"
    assert json.loads(message.tool_calls[0].function.arguments) == {"index": 1}
    assert response.choices[0].finish_reason == "tool_calls"
    assert response.usage.prompt_tokens >= 1 and response.usage.completion_tokens >= 1


@pytest.mark.asyncio
async def test_fail_500_raises_internal_server_error(llm: ScriptedLLM) -> None:
    llm.script(Fail(500, "boom"))
    with pytest.raises(litellm.InternalServerError) as info:
        await _collect(llm)
    assert info.value.status_code == 500
    assert "boom" in str(info.value)
    assert len(llm.requests) == 1


@pytest.mark.asyncio
async def test_fail_429_raises_rate_limit_error_with_retry_after(llm: ScriptedLLM) -> None:
    llm.script(Fail(429, "slow down", retry_after=2))
    with pytest.raises(litellm.RateLimitError) as info:
        await _collect(llm)
    assert info.value.status_code == 429
    # litellm's own ``response`` carries no headers; the real ones are kept here.
    assert info.value.litellm_response_headers["retry-after"] == "2"


@pytest.mark.asyncio
async def test_fail_other_statuses(llm: ScriptedLLM) -> None:
    llm.script(Fail(400, "bad"), Fail(401, "who are you"))
    with pytest.raises(litellm.BadRequestError) as bad:
        await _collect(llm)
    assert bad.value.status_code == 400
    with pytest.raises(litellm.AuthenticationError) as auth:
        await _collect(llm)
    assert auth.value.status_code == 401


@pytest.mark.asyncio
async def test_openai_sdk_retries_a_500_by_default(llm: ScriptedLLM) -> None:
    """Without max_retries=0 the SDK retries, and the retry pops the next step (here: the default)."""
    llm.script(Fail(500))
    chunks = [c async for c in await litellm.acompletion(
        model="openai/scripted", api_base=llm.base_url, api_key="sk-test", messages=MESSAGES, stream=True
    )]  # fmt: skip
    assert "".join(_content(chunks)) == "OK"
    assert len(llm.requests) == 2


@pytest.mark.asyncio
async def test_malformed_chunk_raises_mid_stream(llm: ScriptedLLM) -> None:
    llm.script(Malformed(after_text="partial answer"))
    received: list[str] = []
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as info:
        async for chunk in await _open_stream(llm):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "partial answer"
    assert info.value.status_code == 500
    assert "Expecting property name" in str(info.value)


@pytest.mark.asyncio
async def test_malformed_non_streaming_body(llm: ScriptedLLM) -> None:
    llm.script(Malformed())
    with pytest.raises(litellm.InternalServerError) as info:
        await litellm.acompletion(
            model="openai/scripted",
            api_base=llm.base_url,
            api_key="sk-test",
            messages=MESSAGES,
            max_retries=0,
        )
    assert "Expecting property name" in str(info.value)


@pytest.mark.asyncio
async def test_stall_before_any_byte_times_out(llm: ScriptedLLM) -> None:
    llm.script(Stall(seconds=20))
    started = time.perf_counter()
    with pytest.raises(litellm.Timeout) as info:
        await _collect(llm, timeout=0.5, stream_timeout=0.5)
    assert info.value.status_code == 408
    assert time.perf_counter() - started < 10


@pytest.mark.asyncio
async def test_stall_mid_stream_times_out(llm: ScriptedLLM) -> None:
    llm.script(Stall(seconds=20, after_text="some text"))
    received: list[str] = []
    started = time.perf_counter()
    # litellm >= 1.110 raises its Timeout here; earlier releases wrapped it in MidStreamFallbackError.
    with pytest.raises((litellm.exceptions.Timeout, litellm.exceptions.MidStreamFallbackError)) as info:
        async for chunk in await _open_stream(llm, timeout=0.5, stream_timeout=0.5):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "some text"
    assert re.search(r"timed out|Timeout on reading", str(info.value)), str(info.value)
    assert time.perf_counter() - started < 10


@pytest.mark.asyncio
async def test_stall_then_close_without_done_keeps_the_text_streamed_before(llm: ScriptedLLM) -> None:
    """A body that ends with no finish_reason and no [DONE]: litellm >= 1.110 raises MidStreamFallbackError
    ("Stream ended before a finish_reason was received"); earlier releases ended the stream quietly. Either
    way the text streamed before it arrives."""
    llm.script(Stall(seconds=0.2, after_text="cut short"))
    received: list[str] = []
    try:
        async for chunk in await _open_stream(llm):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    except litellm.exceptions.MidStreamFallbackError as err:
        assert "finish_reason" in str(err)
    assert "".join(received) == "cut short"


@pytest.mark.asyncio
async def test_requests_log_holds_messages_tools_and_response_format(llm: ScriptedLLM) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Read cell 2"}]
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    await _collect(llm, messages=messages, tools=TOOLS, response_format=fmt)
    [body] = llm.requests
    assert body["messages"] == messages
    assert body["tools"] == TOOLS
    assert body["model"] == "scripted"
    assert body["stream"] is True
    assert body["response_format"]["type"] == "json_schema"
    assert len(llm.request_times) == len(llm.first_chunk_times) == 1
    assert llm.request_times[0] <= llm.first_chunk_times[0]


@pytest.mark.asyncio
async def test_callable_steps_answer_from_the_request(llm: ScriptedLLM) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        return Reply(text=f"You said {body['messages'][-1]['content']}")

    llm.script(answer, lambda body: Fail(429) if body.get("tools") else Reply(text="no tools"))
    chunks = await _collect(llm, messages=[{"role": "user", "content": "banana"}])
    assert "".join(_content(chunks)) == "You said banana"
    with pytest.raises(litellm.RateLimitError):
        await _collect(llm, tools=TOOLS)


@pytest.mark.asyncio
async def test_wait_for_requests_from_another_thread(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="slow", delay=0.3))
    task = asyncio.create_task(_collect(llm))
    bodies = await asyncio.to_thread(llm.wait_for_requests, 1, 10.0)
    assert bodies[0]["messages"] == MESSAGES
    assert "".join(_content(await task)) == "slow"
    with pytest.raises(TimeoutError):
        llm.wait_for_requests(2, timeout=0.05)


@pytest.mark.asyncio
async def test_first_chunk_times_are_aligned_with_requests(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="a b"), Fail(500), Reply(text="c d", delay=0.05))
    await _collect(llm)
    with pytest.raises(litellm.InternalServerError):
        await _collect(llm)
    await _collect(llm)
    received, first = llm.request_times, llm.first_chunk_times
    assert len(received) == len(first) == 3
    assert math.isnan(first[1])
    assert received[0] <= first[0] and received[2] + 0.05 <= first[2]


@pytest.mark.asyncio
async def test_last_chunk_times_say_when_each_stream_ended(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="a b c"), Fail(500))
    await _collect(llm)
    with pytest.raises(litellm.InternalServerError):
        await _collect(llm)
    first, last = llm.first_chunk_times, llm.last_chunk_times
    assert len(last) == 2 and math.isnan(last[1])
    assert first[0] < last[0]  # several chunks, then [DONE]


@pytest.mark.asyncio
async def test_transcription_endpoint(llm: ScriptedLLM) -> None:
    llm.script_transcription(Transcript("hello from audio"))
    audio = io.BytesIO(b"RIFF....WAVEfmt ")
    audio.name = "a.wav"
    result = await litellm.atranscription(
        model="openai/whisper-1",
        file=("a.wav", b"RIFF....WAVEfmt "),
        api_base=llm.base_url,
        api_key="sk-test",
    )
    assert result.text == "hello from audio"
    result = await litellm.atranscription(
        model="openai/whisper-1", file=audio, api_base=llm.base_url, api_key="sk-test"
    )
    assert result.text == "scripted transcription"
    assert llm.transcription_requests == [{"model": "whisper-1", "filename": "a.wav", "bytes": 16}] * 2
    assert llm.requests == []  # the chat queue and log are separate


@pytest.mark.asyncio
async def test_client_disconnect_mid_stream_keeps_serving(
    llm: ScriptedLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    llm.chunk_delay = 0.01
    llm.script(Reply(text=" ".join(["word"] * 500)), Stall(seconds=30, after_text="x"))
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            resp = await session.post(
                f"{llm.base_url}/chat/completions", json={"stream": True, "messages": []}
            )
            assert (await resp.content.readline()).startswith(b"data: {")
            resp.close()  # drop the connection mid-stream
    assert "".join(_content(await _collect(llm))) == "OK"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.asyncio
async def test_models_health_and_raw_sse_format(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="Hi there"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{llm.base_url}/models") as resp:
            assert [m["id"] for m in (await resp.json())["data"]] == ["scripted"]
        async with session.get(llm.base_url.removesuffix("/v1") + "/health") as resp:
            assert resp.status == 200
        body = {"model": "gpt-x", "stream": True, "messages": MESSAGES}
        async with session.post(f"{llm.base_url}/chat/completions", json=body) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            raw = (await resp.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"gpt-x"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hi there"


async def _raw_chunks(llm: ScriptedLLM, **body: Any) -> list[tuple[float, dict[str, Any]]]:
    """(seconds since the request, chunk) for each SSE chunk of one streamed request, as sent."""
    out: list[tuple[float, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        payload = {"model": "m", "stream": True, "messages": MESSAGES, **body}
        async with session.post(f"{llm.base_url}/chat/completions", json=payload) as resp:
            async for line in resp.content:
                data = line.decode().strip().removeprefix("data: ")
                if data and data != "[DONE]":
                    out.append((time.perf_counter() - started, json.loads(data)))
    return out


@pytest.mark.asyncio
async def test_prompt_progress_is_streamed_like_llama_cpp_during_the_delay_only_when_asked(
    llm: ScriptedLLM,
) -> None:
    step = Reply(text="Hi there", delay=0.4, prompt_progress=PromptProgress(total=1000, steps=4, cache=200))
    llm.script(step, step)

    timed = await _raw_chunks(llm, return_progress=True)
    reports = [(t, c) for t, c in timed if "prompt_progress" in c]
    assert [c["prompt_progress"]["processed"] for _, c in reports] == [400, 600, 800, 1000]
    assert {(c["prompt_progress"]["total"], c["prompt_progress"]["cache"]) for _, c in reports} == {
        (1000, 200)
    }
    assert [c["prompt_progress"]["time_ms"] for _, c in reports] == [100, 200, 300, 400]
    assert all(c["choices"][0]["delta"] == {"role": "assistant", "content": None} for _, c in reports)
    assert timed[: len(reports)] == reports  # before any content
    assert reports[0][0] < 0.3 and reports[-1][0] >= 0.35  # spread over the delay, not all at its end
    assert "".join(c["choices"][0]["delta"].get("content") or "" for _, c in timed) == "Hi there"

    plain = await _raw_chunks(llm)  # a request that does not ask gets none, and the same delay
    assert not any("prompt_progress" in c for _, c in plain) and plain[0][0] >= 0.35


def test_lifecycle_start_is_idempotent_and_stop_is_prompt() -> None:
    llm = ScriptedLLM()
    assert llm.start() is llm and llm.start() is llm
    assert llm.base_url == f"http://127.0.0.1:{llm.port}/v1" and llm.port > 0

    async def stall_then_stop() -> float:
        llm.script(Stall(seconds=60, after_text="x"))
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                f"{llm.base_url}/chat/completions", json={"stream": True, "messages": []}
            )
            await resp.content.readline()
            started = time.perf_counter()
            await asyncio.to_thread(llm.stop)
            resp.close()
            return time.perf_counter() - started

    assert asyncio.run(stall_then_stop()) < 5
    llm.stop()  # a second stop is harmless
    llm.reset()
    with llm:  # and it can start again
        assert asyncio.run(_collect(llm))


def test_reset_clears_queue_and_logs(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="one"), Reply(text="two"))
    llm.default, llm.chunk_delay = Reply(text="custom"), 0.5
    asyncio.run(_collect(llm))
    assert llm.pending == 1 and len(llm.requests) == 1
    llm.reset()
    assert llm.pending == 0 and llm.requests == [] and llm.request_times == [] and llm.first_chunk_times == []
    assert llm.default == Reply(text="OK") and llm.chunk_delay == 0.0


def test_module_imports_without_litellm() -> None:
    code = "import sys, jupyter_agent.testing.scripted_llm; assert 'litellm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO_ROOT)


def test_cli_serves_the_default_reply() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "jupyter_agent.testing.scripted_llm",
        "--port",
        str(port),
        "--text",
        "Hi CLI",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        remote = SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1")
        assert "".join(_content(asyncio.run(_collect(remote)))) == "Hi CLI"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
