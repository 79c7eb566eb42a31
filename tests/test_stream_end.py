"""A streamed answer ends with the provider's stream: the usage it reported, the stream closed, and litellm's
own end-of-stream work left out only where nothing in litellm listens for it."""

from __future__ import annotations

import asyncio

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.stream_end import answer_chunks
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec

pytestmark = pytest.mark.asyncio

MESSAGES = [{"role": "user", "content": "hello"}]


def client(llm: ScriptedLLM) -> LLMClient:
    return LLMClient(
        model="openai/scripted", options={"api_base": llm.base_url, "api_key": "sk-test"}, retries=0
    )


class _Successes(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.logged = asyncio.Event()

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self.logged.set()


async def test_should_end_an_answer_with_the_usage_the_provider_reported(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="Revenue grew 12% in March.", usage=(123, 45)))
    completion = await client(llm).stream(MESSAGES)
    assert completion.content == "Revenue grew 12% in March."
    assert completion.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (123, 45)


async def test_should_keep_every_tool_call_when_the_stream_ends_early(llm: ScriptedLLM) -> None:
    calls = [ToolCallSpec("read_file", {"path": "a.py"}), ToolCallSpec("read_file", {"path": "b.py"})]
    llm.script(Reply(tool_calls=calls, usage=(50, 7)))
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    completion = await client(llm).stream(MESSAGES, tools)
    assert [c.parsed_arguments() for c in completion.tool_calls] == [{"path": "a.py"}, {"path": "b.py"}]
    assert completion.finish_reason == "tool_calls"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (50, 7)


async def test_should_close_litellms_stream_after_the_provider_usage(llm: ScriptedLLM) -> None:
    llm.script(Reply(text="short answer", usage=(9, 2)))
    response = await litellm.acompletion(
        model="openai/scripted",
        api_base=llm.base_url,
        api_key="sk-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in answer_chunks(response, litellm)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "short answer"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 9
    assert [chunk async for chunk in response] == []  # closed: nothing more comes


async def test_should_let_litellm_count_the_tokens_when_the_provider_reports_none(llm: ScriptedLLM) -> None:
    def ignores_stream_options(body: dict) -> Reply:  # as a provider that never sends a usage chunk
        body.pop("stream_options", None)
        return Reply(text="no usage sent")

    llm.script(ignores_stream_options)
    response = await litellm.acompletion(
        model="openai/scripted",
        api_base=llm.base_url,
        api_key="sk-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in answer_chunks(response, litellm)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "no usage sent"
    counted = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert counted and counted[-1].completion_tokens > 0  # litellm's own count, at the end of its stream


async def test_should_leave_litellms_end_of_stream_to_its_callbacks(llm: ScriptedLLM, monkeypatch) -> None:
    successes = _Successes()
    for name in (
        "success_callback",
        "_async_success_callback",
        "failure_callback",
        "_async_failure_callback",
    ):
        monkeypatch.setattr(litellm, name, list(getattr(litellm, name)))  # litellm adds the logger here too
    monkeypatch.setattr(litellm, "callbacks", [successes])
    llm.script(Reply(text="logged answer", usage=(11, 3)))
    completion = await client(llm).stream(MESSAGES)
    assert completion.content == "logged answer"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    await asyncio.wait_for(successes.logged.wait(), 10)  # litellm read its stream to the end and logged it
