"""The LLM client: one streamed model call over litellm, with retries, fallbacks and measurements.

litellm takes seconds to import and its first call pays for more lazy imports, so :meth:`LLMClient.preload`
imports it and makes one mock call in a worker thread: the event loop never stalls and the first user
message does not pay for either. This is the only module that imports litellm.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_agent.engine.types import Completion, ToolCall, Usage
from jupyter_agent.errors import ProviderError
from jupyter_agent.security.redaction import redact_text

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
_WARM_TOOLS = [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]


class _StreamBroken(Exception):
    """The stream failed after it had already produced output: retrying would duplicate it."""


_import_lock = threading.Lock()
_import_future: concurrent.futures.Future[Any] | None = None


def _load_litellm(warm: bool) -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers that lack a parameter (e.g. stream_options) still work
    if warm:
        start = time.perf_counter()
        try:
            asyncio.run(_warm_call(litellm))
        except Exception:  # warming is an optimisation: never fatal
            log.debug("litellm warm-up call failed", exc_info=True)
        log.debug("litellm warm-up took %.0f ms", (time.perf_counter() - start) * 1000)
    return litellm


async def _warm_call(litellm: Any) -> None:
    """One real streamed call with tools to a throw-away loopback endpoint.

    A ``mock_response`` call skips the HTTP client, response parsing and tool-call types, whose lazy imports
    and schema builds otherwise land on the first user message (about a second).
    """
    from aiohttp import web

    chunk = {
        "id": "w",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "warmup",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "warm"}, "finish_reason": "stop"}],
    }

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        stream = await litellm.acompletion(
            model="openai/warmup",
            api_base=f"http://127.0.0.1:{port}/v1",
            api_key="none",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            tools=_WARM_TOOLS,
            stream_options={"include_usage": True},
            max_retries=0,
            timeout=10,
        )
        async for _ in stream:
            pass
    finally:
        await runner.cleanup()


def preload_litellm(warm: bool = True) -> concurrent.futures.Future[Any]:
    """Start importing (and warming) litellm in a worker thread; safe to call many times."""
    global _import_future
    with _import_lock:
        failed = (
            _import_future is not None and _import_future.done() and _import_future.exception() is not None
        )
        if _import_future is None or failed:  # a failed import is tried again, not kept for good
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="litellm-import")
            _import_future = pool.submit(_load_litellm, warm)
            pool.shutdown(wait=False)
        return _import_future


async def get_litellm() -> Any:
    return await asyncio.wrap_future(preload_litellm())


@dataclass
class StreamHandlers:
    """Callbacks for the pieces of a streamed answer, called on the event loop as they arrive."""

    on_token: Callable[[str], None] = lambda _text: None
    on_thinking: Callable[[str], None] = lambda _text: None
    on_retry: Callable[[str, int, str], None] = lambda _model, _attempt, _reason: None


@dataclass
class LLMClient:
    """Streams completions from one configured model, falling back to others when it fails."""

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    fallback_models: list[str] = field(default_factory=list)
    retries: int = 2  # extra attempts per model on 429/5xx/timeouts, before any output was streamed
    backoff: float = 0.5  # seconds; doubled each attempt, with jitter; a Retry-After header wins
    max_backoff: float = 20.0
    request_timeout: float = 120.0  # seconds until the first chunk
    chunk_timeout: float = 60.0  # seconds allowed between two chunks of a stream
    vision: bool | None = None  # None: ask litellm whether the model takes images; True/False: force
    #: The embedded local model's adapter (jupyter_agent.local_model.adapter.LocalAdapter) or None: calls
    #: to the model it handles go to the local llama.cpp server as constrained JSON answers.
    local: Any = None
    #: Why no model is available, shown when a call is made without one (e.g. the local extra is missing).
    no_model_hint: str = ""

    def preload(self) -> None:
        preload_litellm()

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        handlers: StreamHandlers | None = None,
        *,
        model: str | None = None,
        **extra: Any,
    ) -> Completion:
        """One streamed call; retries and falls back while nothing has been streamed yet."""
        handlers = handlers or StreamHandlers()
        if not (model or self.model):
            raise ProviderError(
                self.no_model_hint
                or "No model is configured: set c.JupyterAgent.model (or JUPYTER_AGENT_MODEL), e.g. "
                "'openai/gpt-4o-mini' with OPENAI_API_KEY, or install the offline model with "
                "pip install 'jupyter-agent[local]'.",
                code="no_model",
            )
        models = [model or self.model, *[m for m in self.fallback_models if m != (model or self.model)]]
        last_error: Exception | None = None
        for name in models:
            for attempt in range(self.retries + 1):
                try:
                    return await self._stream_once(name, messages, tools, handlers, extra)
                except _StreamBroken as err:
                    raise ProviderError(str(err)) from None
                except Exception as err:
                    last_error = err
                    status = _status_of(err)
                    if not _is_retryable(err, status):
                        raise ProviderError(_describe(name, err, status), code=_code_for(status)) from None
                    reason = _describe(name, err, status)
                    if attempt < self.retries:
                        delay = self._delay(attempt, err)
                        log.info("Model %s failed (%s); retry %d in %.1f s", name, reason, attempt + 1, delay)
                        handlers.on_retry(name, attempt + 1, reason)
                        await asyncio.sleep(delay)
            if name != models[-1]:
                log.warning("Model %s failed; falling back to the next model", name)
        assert last_error is not None
        status = _status_of(last_error)
        raise ProviderError(_describe(models[-1], last_error, status), code=_code_for(status))

    async def supports_vision(self, model: str | None = None) -> bool:
        """Whether images can go to the model as image content (litellm's model map, unless configured)."""
        if self.vision is not None:
            return self.vision
        litellm = await get_litellm()
        try:
            return bool(litellm.supports_vision(model=model or self.model))
        except Exception:  # a model litellm does not know: send text only
            return False

    async def transcribe(self, audio: bytes, filename: str, model: str) -> str:
        """Speech to text through litellm's transcription API (same endpoint and key options as chat)."""
        litellm = await get_litellm()
        options = {k: v for k, v in self.options.items() if k in ("api_base", "api_key", "api_version")}
        try:
            result = await litellm.atranscription(
                model=model, file=(filename, audio), max_retries=0, **options
            )
        except Exception as err:
            status = _status_of(err)
            raise ProviderError(_describe(model, err, status), code=_code_for(status)) from None
        return str(getattr(result, "text", "") or "")

    def _delay(self, attempt: int, err: Exception) -> float:
        retry_after = _retry_after(err)
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        return min(self.backoff * (2**attempt) * (0.75 + random.random() / 2), self.max_backoff)

    async def _stream_once(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        handlers: StreamHandlers,
        extra: dict[str, Any],
    ) -> Completion:
        litellm = await get_litellm()
        local = None
        if self.local is not None and self.local.handles(model):
            local = await self.local.prepare(messages, tools, handlers, dict(extra))
            messages, tools, handlers, extra = local.messages, None, local.handlers, local.extra
        kwargs: dict[str, Any] = {
            "timeout": self.request_timeout,
            "stream_timeout": self.request_timeout,
            "max_retries": 0,
            "num_retries": 0,
            "stream_options": {"include_usage": True},
            **self.options,
            **extra,
        }
        if tools:
            kwargs["tools"] = tools
        started = time.perf_counter()
        response = await litellm.acompletion(
            model=local.model if local is not None else model, messages=messages, stream=True, **kwargs
        )
        result = Completion(usage=Usage(model=model))
        calls: dict[int, ToolCall] = {}
        emitted = False
        iterator = response.__aiter__()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that arrives
                    # as a chunk does, and the turn would go on streaming after the user cancelled it.
                    async with asyncio.timeout(self.chunk_timeout):
                        chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise TimeoutError(f"no data from the model for {self.chunk_timeout:g} s") from None
                usage = getattr(chunk, "usage", None)
                if usage:
                    result.usage.prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
                    result.usage.completion_tokens = getattr(usage, "completion_tokens", 0) or 0
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if choice.finish_reason:
                    result.finish_reason = choice.finish_reason
                thinking = getattr(delta, "reasoning_content", None)
                if thinking:
                    result.usage.ttft_ms = result.usage.ttft_ms or (time.perf_counter() - started) * 1000
                    result.thinking += thinking
                    emitted = True
                    handlers.on_thinking(thinking)
                if delta.content:
                    result.usage.ttft_ms = result.usage.ttft_ms or (time.perf_counter() - started) * 1000
                    result.content += delta.content
                    emitted = True
                    handlers.on_token(delta.content)
                for tc in delta.tool_calls or []:
                    result.usage.ttft_ms = result.usage.ttft_ms or (time.perf_counter() - started) * 1000
                    emitted = True
                    index = tc.index if tc.index is not None else len(calls)
                    call = calls.setdefault(index, ToolCall(id="", name=""))
                    call.id = tc.id or call.id
                    if tc.function is not None:
                        call.name += tc.function.name or ""
                        call.arguments += tc.function.arguments or ""
        except Exception as err:
            if emitted:
                raise _StreamBroken(
                    f"the model's stream broke after it started answering: {_describe(model, err, _status_of(err))}"
                ) from err
            raise
        result.tool_calls = [c for _, c in sorted(calls.items()) if c.name]
        if local is not None:
            result = local.finish(result)
        for n, call in enumerate(result.tool_calls):
            call.id = call.id or f"call_{int(time.time() * 1000)}_{n}"
        result.usage.latency_ms = (time.perf_counter() - started) * 1000
        result.usage.cost = _cost(litellm, model, result.usage)
        return result


def _status_of(err: Exception) -> int | None:
    status = getattr(err, "status_code", None)
    return status if isinstance(status, int) else None


def _is_retryable(err: Exception, status: int | None) -> bool:
    if isinstance(err, TimeoutError | ConnectionError):
        return True
    name = type(err).__name__
    if name in {"Timeout", "APIConnectionError", "ServiceUnavailableError", "InternalServerError"}:
        return True
    return status in RETRYABLE_STATUS


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def _code_for(status: int | None) -> str:
    return {401: "auth_failed", 403: "forbidden", 404: "model_not_found", 429: "rate_limited"}.get(
        status or 0, "provider_error"
    )


def _describe(model: str, err: Exception, status: int | None) -> str:
    message = redact_text(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    hint = {
        401: "check the API key (c.JupyterAgent.model_options or the provider's environment variable)",
        403: "the provider refused access to this model",
        404: "check the model name (a litellm model string such as 'openai/gpt-4o-mini')",
        429: "the provider is rate limiting; wait a moment or configure fallback_models",
    }.get(status or 0, "")
    text = f"model {model!r} failed"
    if status:
        text += f" (HTTP {status})"
    text += f": {message[:500]}"
    return f"{text.rstrip('. ')}. {hint[0].upper()}{hint[1:]}." if hint else text


def _cost(litellm: Any, model: str, usage: Usage) -> float | None:
    if not (usage.prompt_tokens or usage.completion_tokens):
        return None
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
        )
    except Exception:  # unknown model: litellm has no price for it
        return None
    return round(prompt_cost + completion_cost, 8)
