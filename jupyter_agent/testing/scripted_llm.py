"""A scripted OpenAI-compatible LLM server for tests and benchmarks.

aiohttp serves on 127.0.0.1 in a background thread with its own event loop, so callers on any loop
(tornado's, pytest's) talk to it over real HTTP, e.g. ``litellm.acompletion(model="openai/scripted",
api_base=llm.base_url, api_key="sk-test", ...)``. Each chat request pops one step from a FIFO queue
(:meth:`ScriptedLLM.script`); when the queue is empty ``llm.default`` answers.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "Fail",
    "Malformed",
    "PromptProgress",
    "Reply",
    "ScriptedLLM",
    "Stall",
    "ToolCallSpec",
    "Transcript",
]

_call_ids = itertools.count(1)


@dataclass(frozen=True)
class ToolCallSpec:
    """A tool call the model makes; ``str`` arguments are sent verbatim (may be invalid JSON)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class PromptProgress:
    """Prompt-processing progress as llama.cpp's own server streams it when a request asks for it.

    Sent only to a streamed request with ``"return_progress": true``, as ``steps`` chunks spread over the
    reply's ``delay`` (the time the server spends reading the prompt), before any content: each one is an
    empty assistant delta with ``"prompt_progress": {"total", "cache", "processed", "time_ms"}`` at the top
    level of the chunk; ``processed`` counts the cached tokens too, as llama.cpp's does.
    """

    total: int = 1000
    steps: int = 4
    cache: int = 0

    def chunks(self, seconds: float) -> list[dict[str, int]]:
        todo = self.total - self.cache
        return [
            {
                "total": self.total,
                "cache": self.cache,
                "processed": self.cache + todo * k // self.steps,
                "time_ms": round(seconds * 1000 * k / self.steps),
            }
            for k in range(1, self.steps + 1)
        ]


@dataclass(frozen=True)
class Reply:
    """A normal answer: thinking, then text, then tool calls, streamed in small deltas.

    ``delay`` holds the answer back (seconds before its first chunk), like a model reading a long prompt;
    with ``prompt_progress`` a request that asks for it hears how that reading goes meanwhile. With
    ``stamp`` each streamed text piece ends with ``@<epoch seconds>``, the moment it was written, so a
    benchmark can tell how long the piece took to reach its client.
    """

    text: str = ""
    tool_calls: Sequence[ToolCallSpec] = ()
    thinking: str = ""
    chunk_size: int = 0
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None
    delay: float | None = None
    prompt_progress: PromptProgress | None = None
    stamp: bool = False


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error status and an OpenAI-style error body."""

    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None


@dataclass(frozen=True)
class Stall:
    """Stream ``after_text``, stay silent for ``seconds``, then end the body without [DONE].

    Without ``after_text`` (or for a non-streaming request) not even the response headers are sent:
    the connection is held silent, then closed.
    """

    seconds: float = 30.0
    after_text: str = ""
    opened: bool = False  # with no after_text: send the headers and an empty first chunk, then go silent


@dataclass(frozen=True)
class Malformed:
    """Stream ``after_text``, then a chunk that is not JSON, then [DONE]."""

    after_text: str = ""


@dataclass(frozen=True)
class Transcript:
    """A step for the transcription endpoint."""

    text: str


Mark = Callable[[], None]
Step = Reply | Fail | Stall | Malformed | Transcript | Callable[[dict[str, Any]], Any]

_ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def split_text(text: str, chunk_size: int = 0) -> list[str]:
    """Split ``text`` into stream pieces: words with their leading whitespace, or N characters."""
    if chunk_size > 0:
        return [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    return re.findall(r"\s*\S+|\s+$", text)


def _split_args(args: str, chunk_size: int) -> list[str]:
    """Split tool-call arguments into pieces, at least two when there are two characters."""
    size = chunk_size if chunk_size > 0 else math.ceil(len(args) / 3)
    size = max(1, min(size, math.ceil(len(args) / 2)))
    return [args[i : i + size] for i in range(0, len(args), size)]


def _content_len(messages: Any) -> int:
    total = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return total


def _envelope(body: dict[str, Any], kind: str) -> dict[str, Any]:
    envelope = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time())}
    return {**envelope, "model": body.get("model", "scripted")}


def _tool_call(call_id: str, tc: ToolCallSpec, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": tc.name, "arguments": arguments}}


def _error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    """An OpenAI-style error response."""
    default = ("server_error" if status >= 500 else "invalid_request_error", str(status))
    kind, code = _ERROR_TYPES.get(status, default)
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return web.json_response(body, status=status, headers=headers)


class ScriptedLLM:
    """An OpenAI-compatible server whose answers are scripted by the test."""

    def __init__(self, chunk_delay: float = 0.0, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.chunk_delay = self._initial_chunk_delay = chunk_delay
        self.host = host
        self.port = port
        self._wanted_port = port
        self.default: Step = Reply(text="OK")
        self.default_transcription: Step = Transcript("scripted transcription")
        self._queue: deque[Step] = deque()
        self._tqueue: deque[Step] = deque()
        self._requests: list[dict[str, Any]] = []
        self._request_times: list[float] = []
        self._first_chunk_times: list[float] = []
        self._last_chunk_times: list[float] = []
        self._transcription_requests: list[dict[str, Any]] = []
        self._generation = 0  # bumped by reset() so in-flight requests don't mark the wrong entry
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- scripting and inspection (thread-safe) ------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *steps: Step) -> ScriptedLLM:
        """Append steps to the chat queue; each chat request pops one."""
        with self._cond:
            self._queue.extend(steps)
        return self

    def script_transcription(self, *steps: Step) -> ScriptedLLM:
        """Append steps to the transcription queue (separate from the chat queue)."""
        with self._cond:
            self._tqueue.extend(steps)
        return self

    def _snap(self, items: list[Any]) -> list[Any]:
        with self._cond:
            return list(items)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of the JSON bodies of all chat requests, in arrival order."""
        return self._snap(self._requests)

    @property
    def request_times(self) -> list[float]:
        """``time.perf_counter()`` at the arrival of each chat request."""
        return self._snap(self._request_times)

    @property
    def first_chunk_times(self) -> list[float]:
        """``time.perf_counter()`` when each request's first chunk was written; NaN if none (yet)."""
        return self._snap(self._first_chunk_times)

    @property
    def last_chunk_times(self) -> list[float]:
        """``time.perf_counter()`` when each request's latest chunk (``[DONE]`` once finished) was written."""
        return self._snap(self._last_chunk_times)

    @property
    def transcription_requests(self) -> list[dict[str, Any]]:
        """``{"model", "filename", "bytes"}`` of each transcription request."""
        return self._snap(self._transcription_requests)

    @property
    def pending(self) -> int:
        """Number of scripted chat steps not consumed yet."""
        with self._cond:
            return len(self._queue)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` chat requests arrived; raise ``TimeoutError`` otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"expected {n} requests, got {len(self._requests)} in {timeout}s")
            return list(self._requests)

    def reset(self) -> None:
        """Clear both queues and every log; restore ``default``, ``default_transcription``, ``chunk_delay``."""
        with self._cond:
            self.default, self.default_transcription = Reply(text="OK"), Transcript("scripted transcription")
            self.chunk_delay = self._initial_chunk_delay
            self._generation += 1
            for items in (self._queue, self._tqueue, self._requests, self._request_times):
                items.clear()
            self._first_chunk_times.clear()
            self._last_chunk_times.clear()
            self._transcription_requests.clear()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> ScriptedLLM:
        """Start serving in a background thread (idempotent); return self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._ready.clear()
        self._start_error = None
        self.port = self._wanted_port
        self._thread = threading.Thread(target=self._run, name="scripted-llm", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("scripted LLM server did not start within 10 s")
        if self._start_error is not None:
            self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (within 5 s)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # the loop is already closed
                pass
        thread.join(5.0)
        self._thread = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._start_error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    # -- handlers ------------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": "scripted", "object": "model", "created": int(time.time()), "owned_by": "scripted-llm"}
        return web.json_response({"object": "list", "data": [model]})

    def _pop(self, queue: deque[Step], default: Step, body: dict[str, Any]) -> Step:
        with self._cond:
            step = queue.popleft() if queue else default
        for _ in range(10):  # a callable may answer with another callable
            if not callable(step):
                break
            step = step(body)
        return step

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        with self._cond:
            slot = (self._generation, len(self._requests))
            mark = functools.partial(self._mark_chunk, slot)
            self._requests.append(body)
            self._request_times.append(received)
            self._first_chunk_times.append(math.nan)
            self._last_chunk_times.append(math.nan)
            self._cond.notify_all()
        step = self._pop(self._queue, self.default, body)
        if isinstance(step, Fail):
            return _error(step.status, step.message, step.retry_after)
        try:
            if isinstance(step, Stall) and (not (step.after_text or step.opened) or not body.get("stream")):
                await self._hold(request, step.seconds)
                if request.transport is not None:
                    request.transport.close()  # hang up without any answer
                return web.Response(status=499)
            if isinstance(step, (Reply, Stall, Malformed)) and body.get("stream"):
                return await self._stream(request, body, step, mark)
            if isinstance(step, (Reply, Malformed)):
                return await self._complete(request, body, step, mark)
        except ConnectionError:  # the client went away mid-answer: keep serving quietly
            return web.Response(status=499)
        return _error(500, f"scripted LLM: unsupported chat step {step!r}")

    def _mark_chunk(self, slot: tuple[int, int]) -> None:
        """A chunk was written: the first one's time is kept, and the latest one's."""
        now = time.perf_counter()
        with self._cond:
            generation, index = slot
            if generation == self._generation:
                if math.isnan(self._first_chunk_times[index]):
                    self._first_chunk_times[index] = now
                self._last_chunk_times[index] = now

    async def _hold(self, request: web.Request, seconds: float) -> None:
        """Wait ``seconds`` unless the server stops; raise ``ConnectionResetError`` if the client left."""
        assert self._stop_event is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop_event.is_set():
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("client disconnected")
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            out = len(reply.text) + len(reply.thinking)
            out += sum(len(tc.name) + len(tc.arguments_json()) for tc in reply.tool_calls)
            prompt, completion = max(1, _content_len(body.get("messages")) // 4), max(1, out // 4)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _tool_ids(reply: Reply) -> list[str]:
        return [tc.id or f"call_{next(_call_ids)}" for tc in reply.tool_calls]

    async def _complete(
        self, request: web.Request, body: dict[str, Any], step: Reply | Malformed, mark: Mark
    ) -> web.Response:
        if isinstance(step, Malformed):
            mark()
            return web.Response(text="{not json", content_type="application/json")
        if step.delay:
            await self._hold(request, step.delay)
        message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
        if step.thinking:
            message["reasoning_content"] = step.thinking
        if step.tool_calls:
            calls = zip(self._tool_ids(step), step.tool_calls, strict=True)
            message["tool_calls"] = [_tool_call(cid, tc, tc.arguments_json()) for cid, tc in calls]
        finish = step.finish_reason or ("tool_calls" if step.tool_calls else "stop")
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        payload = _envelope(body, "chat.completion")
        payload.update(choices=[choice], usage=self._usage(body, step))
        mark()
        return web.json_response(payload)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], step: Reply | Stall | Malformed, mark: Mark
    ) -> web.StreamResponse:
        reply = step if isinstance(step, Reply) else Reply(text=step.after_text)
        size = reply.chunk_size
        deltas: list[dict[str, Any]] = [{"reasoning_content": p} for p in split_text(reply.thinking, size)]
        deltas += [{"content": p} for p in split_text(reply.text, size)]
        for i, (cid, tc) in enumerate(zip(self._tool_ids(reply), reply.tool_calls, strict=True)):
            deltas.append({"tool_calls": [{"index": i, **_tool_call(cid, tc, "")}]})
            for piece in _split_args(tc.arguments_json(), size):
                deltas.append({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        deltas[0:1] = [{"role": "assistant", **(deltas[0] if deltas else {"content": ""})}]
        base = _envelope(body, "chat.completion.chunk")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(data: str) -> None:
            await resp.write(f"data: {data}\n\n".encode())
            mark()

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return json.dumps({**base, "choices": [choice], **extra})

        progress = reply.prompt_progress if body.get("return_progress") else None
        if progress is not None:
            seconds = reply.delay or 0.0
            for report in progress.chunks(seconds):
                await self._hold(request, seconds / progress.steps)
                await send(chunk({"role": "assistant", "content": None}, prompt_progress=report))
        elif reply.delay:
            await self._hold(request, reply.delay)
        for n, delta in enumerate(deltas):
            if n and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if reply.stamp and delta.get("content"):
                delta = {**delta, "content": f"{delta['content']}@{time.time():.6f}"}
            await send(chunk(delta))
        if isinstance(step, Stall):
            await self._hold(request, step.seconds)
            return resp  # aiohttp ends the chunked body: no finish_reason, no [DONE]
        if isinstance(step, Malformed):
            await send("{not json")
        else:
            await send(chunk({}, reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")))
            if (body.get("stream_options") or {}).get("include_usage"):
                await send(json.dumps({**base, "choices": [], "usage": self._usage(body, reply)}))
        await send("[DONE]")
        await resp.write_eof()
        return resp

    async def _transcription(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if isinstance(upload, web.FileField):
            filename, data = upload.filename, upload.file.read()
        else:
            filename, data = None, str(upload or "").encode()
        record = {"model": str(form.get("model", "")), "filename": filename, "bytes": len(data)}
        with self._cond:
            self._transcription_requests.append(record)
        step = self._pop(self._tqueue, self.default_transcription, record)
        if isinstance(step, Fail):
            return _error(step.status, step.message, step.retry_after)
        text = step.text if isinstance(step, (Transcript, Reply)) else str(step)
        fmt = str(form.get("response_format", "json"))
        if fmt in ("text", "srt", "vtt"):
            return web.Response(text=text, content_type="text/plain")
        if fmt == "verbose_json":
            return web.json_response({"task": "transcribe", "language": "en", "duration": 1.0, "text": text})
        return web.json_response({"text": text})


def main(argv: list[str] | None = None) -> None:
    """Serve forever with a default reply (for manual use)."""
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible LLM server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--text", default="Hello from the scripted LLM.")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args(argv)
    llm = ScriptedLLM(chunk_delay=args.delay, host=args.host, port=args.port)
    llm.default = Reply(text=args.text)
    llm.start()
    print(f"Scripted LLM serving at {llm.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
