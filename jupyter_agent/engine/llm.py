"""The LLM client: one streamed model call over litellm, with retries, fallbacks and measurements.

litellm takes seconds to import and its first call pays for more lazy imports, so :meth:`LLMClient.preload`
imports it and makes one mock call in a worker thread: the event loop never stalls and the first user
message does not pay for either. This is the only module that imports litellm.

A slow model (a CPU model reading a long prompt) says nothing for a minute or more, so a call reports how far
it has got through ``StreamHandlers.on_progress``: the prompt's size (our estimate, then the server's count),
how much of it the server has read where it says so (llama.cpp's ``prompt_progress``), and when the answer
starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_agent.engine.stream_end import answer_chunks, tap_raw_chunks
from jupyter_agent.engine.types import Completion, ToolCall, Usage
from jupyter_agent.errors import ProviderError
from jupyter_agent.security.redaction import Redactor, Vault, redact_text

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

    from jupyter_agent.engine.metrics import Measurements

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
            _count_prompt(litellm, [{"role": "user", "content": "warm"}], None)  # loads the tokenizer
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


@dataclass(frozen=True)
class ModelProgress:
    """How far one model call has got before (and as) its answer shows, for people waiting on it."""

    #: "starting": the model itself is starting (the embedded one); "prompt": the model reads the prompt;
    #: "output": it started answering (``output`` says with what)
    phase: str
    prompt_tokens: int | None = None  # the prompt's size: the server's count, else our estimate
    estimated: bool = False  # prompt_tokens is our estimate (litellm's tokenizer), not the server's count
    progress: float | None = None  # 0..1 of the prompt read, only where the server reports it
    output: str = ""  # "text", "thinking" or "tool_call"
    tool: str = ""  # the tool being called, once its name is known


@dataclass
class StreamHandlers:
    """Callbacks for the pieces of a streamed answer, called on the event loop as they arrive."""

    on_token: Callable[[str], None] = lambda _text: None
    on_thinking: Callable[[str], None] = lambda _text: None
    on_retry: Callable[[str, int, str], None] = lambda _model, _attempt, _reason: None
    on_progress: Callable[[ModelProgress], None] = lambda _progress: None


#: What a request asks of llama.cpp's own server so that it streams its prompt-processing progress.
PROGRESS_REQUEST = {"return_progress": True}


def wants_progress(kwargs: dict[str, Any]) -> bool:
    """Whether a request asks the server for prompt progress (``extra_body={"return_progress": True}``)."""
    body = kwargs.get("extra_body")
    return isinstance(body, dict) and bool(body.get("return_progress"))


def prompt_progress(chunk: Any) -> tuple[int, float] | None:
    """``(prompt tokens, fraction read)`` from a chunk carrying llama.cpp's ``prompt_progress``, else None.

    llama.cpp counts the tokens it reused from its cache in ``processed``; the fraction is of the rest, the
    part it really has to read.
    """
    report = getattr(chunk, "prompt_progress", None)
    if report is None and isinstance(getattr(chunk, "model_extra", None), dict):
        report = chunk.model_extra.get("prompt_progress")
    if not isinstance(report, dict):
        return None
    try:
        total, cache, processed = (
            int(report["total"]),
            int(report.get("cache") or 0),
            int(report["processed"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if total <= 0:
        return None
    todo = total - cache
    fraction = 1.0 if todo <= 0 else (processed - cache) / todo
    return total, min(1.0, max(0.0, fraction))


def _count_prompt(
    litellm: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> int | None:
    """An estimate of the prompt's tokens with litellm's default tokenizer, or None.

    Not the model's own tokenizer: litellm fetches some of those from the network, which may hang here, and
    the embedded server's tokenize endpoint would interrupt a generation that is streaming meanwhile.
    """
    texts = [  # images left out: litellm would fetch an image URL to size it
        {**m, "content": _text_of(m.get("content"))} if isinstance(m.get("content"), list) else m
        for m in messages
    ]
    try:
        return int(litellm.token_counter(messages=texts, tools=tools or None))
    except Exception:
        log.debug("Could not count the prompt's tokens", exc_info=True)
        return None


_counting: concurrent.futures.ThreadPoolExecutor | None = None


def _counting_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _counting
    if _counting is None:
        _counting = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prompt-count")
    return _counting


def _text_of(content: list[Any]) -> str:
    return "\n".join(
        str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
    )


class _ProgressReporter:
    """Turns a call's estimate, the server's progress reports and its first output into ``on_progress``
    calls, each only when it says something new."""

    def __init__(self, on_progress: Callable[[ModelProgress], None]) -> None:
        self._on_progress = on_progress
        self._last: ModelProgress | None = None
        self._closed = False

    def _send(self, progress: ModelProgress) -> None:
        if progress != self._last and not self._closed:
            self._last = progress
            self._on_progress(progress)

    def _reading(self) -> bool:
        return self._last is not None and self._last.phase == "prompt"

    def begin(self) -> None:
        self._send(ModelProgress("prompt"))

    def estimate(self, tokens: int | None) -> None:
        """Our count, unless the server already gave its own (or the answer started)."""
        if tokens and self._reading() and self._last.prompt_tokens is None:  # type: ignore[union-attr]
            self._send(ModelProgress("prompt", prompt_tokens=tokens, estimated=True))

    def server(self, chunk: Any) -> None:
        """A chunk's progress report, if it carries one that moves on from the last."""
        report = prompt_progress(chunk)
        if report is None or not self._reading():
            return
        last = self._last.progress  # type: ignore[union-attr]
        if last is None or report[1] > last:
            self._send(ModelProgress("prompt", prompt_tokens=report[0], progress=report[1]))

    def output(self, kind: str, tool: str = "") -> None:
        """The answer goes on with ``kind`` (the first call's ``tool``, once its name is known)."""
        last = self._last
        if last is None or last.output != kind or (tool and not last.tool):
            self._send(ModelProgress("output", output=kind, tool=tool))

    def close(self) -> None:
        """The call is over: a count that comes in late is no longer news."""
        self._closed = True


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
    #: Hides secrets from the provider (security.redaction.Redactor): a request's messages carry placeholders,
    #: and the tool calls that come back have the real values again. None: requests go as they are.
    redactor: Redactor | None = None
    #: Where each call is recorded (engine.metrics): model, outcome, tokens, cost, time to first token.
    measurements: Measurements | None = None

    def preload(self) -> None:
        preload_litellm()

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        handlers: StreamHandlers | None = None,
        *,
        model: str | None = None,
        session: str | None = None,
        **extra: Any,
    ) -> Completion:
        """One streamed call; retries and falls back while nothing has been streamed yet.

        ``session`` names the conversation whose placeholders the tool calls' arguments may use. Every call
        (the turns', the planner's, summaries) is recorded here, once.
        """
        if self.measurements is None:
            return await self._stream(messages, tools, handlers, model, session, extra)
        record = self.measurements.model_call(model or self.model)
        try:
            completion = await self._stream(messages, tools, handlers, model, session, extra)
        except asyncio.CancelledError:
            record.finish(None, "cancelled")
            raise
        except Exception:
            record.finish(None, "error")
            raise
        record.finish(completion.usage)
        return completion

    async def _stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        handlers: StreamHandlers | None,
        model: str | None,
        session: str | None,
        extra: dict[str, Any],
    ) -> Completion:
        handlers = handlers or StreamHandlers()
        vault = None
        if self.redactor is not None:
            vault = self.redactor.vault(session) if session else Vault()
            messages = self.redactor.redact_messages(messages, vault)
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
            try:
                completion = await self._retrying(name, handlers)(
                    self._stream_once, name, messages, tools, handlers, extra
                )
            except _StreamBroken as err:
                raise ProviderError(str(err)) from None
            except Exception as err:
                status = _status_of(err)
                if _is_budget_error(err):  # a LiteLLM proxy's budget: no retry or fallback helps today
                    raise ProviderError(_describe_budget(name, err), code="budget_exceeded") from None
                if not _is_retryable(err):
                    raise ProviderError(_describe(name, err, status), code=_code_for(status)) from None
                last_error = err
                if name != models[-1]:
                    log.warning("Model %s failed; falling back to the next model", name)
                continue
            if self.redactor is not None and vault is not None:
                for call in completion.tool_calls:
                    call.arguments = self.redactor.restore_json(call.arguments, vault)
            return completion
        status = _status_of(last_error)
        raise ProviderError(_describe(models[-1], last_error, status), code=_code_for(status))

    def _retrying(self, model: str, handlers: StreamHandlers) -> AsyncRetrying:
        """Tries one model up to ``retries`` more times on errors worth retrying (never after output
        streamed: those raise ``_StreamBroken``), waiting as the server asks or with jittered backoff.

        tenacity is imported here, at the first call, not with this module: where tornado is installed it
        imports tornado's IO loop, which a CLI process otherwise never loads (a kernel has it already).
        """
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
        from tenacity.wait import wait_exponential, wait_random

        def announce(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome is not None else None
            reason = _describe(model, err, _status_of(err)) if err is not None else "unknown error"
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            log.info("Model %s failed (%s); retry %d in %.1f s", model, reason, state.attempt_number, delay)
            handlers.on_retry(model, state.attempt_number, reason)

        return AsyncRetrying(
            retry=retry_if_exception(lambda err: _is_retryable(err) and not _is_budget_error(err)),
            stop=stop_after_attempt(self.retries + 1),
            wait=_server_asked_or(
                wait_exponential(multiplier=self.backoff) + wait_random(0, self.backoff / 2), self.max_backoff
            ),
            before_sleep=announce,
            reraise=True,  # the last error itself, for the fallback (or the message) to handle
        )

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
        reporter = _ProgressReporter(handlers.on_progress)
        reporter.begin()
        # Counted in a thread of its own beside the request: the count must not delay the answer (nor take
        # a thread of the loop's default pool, where litellm prepares its requests).
        counting = asyncio.get_running_loop().run_in_executor(
            _counting_pool(), _count_prompt, litellm, messages, tools
        )
        counting.add_done_callback(
            lambda done: None if done.cancelled() or done.exception() else reporter.estimate(done.result())
        )
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
        try:
            response = await litellm.acompletion(
                model=local.model if local is not None else model, messages=messages, stream=True, **kwargs
            )
        except BaseException:
            counting.cancel()
            reporter.close()
            raise
        if wants_progress(kwargs) and not tap_raw_chunks(response, reporter.server):
            log.debug("This litellm hides its raw chunks: only the first prompt progress report is seen")
        result = Completion(usage=Usage(model=model))
        calls: dict[int, ToolCall] = {}
        emitted = False
        iterator = answer_chunks(response, litellm)  # ends with the provider's stream: see stream_end
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
                reporter.server(chunk)  # what litellm kept of a progress report (when the tap could not)
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
                    reporter.output("thinking")
                    handlers.on_thinking(thinking)
                if delta.content:
                    result.usage.ttft_ms = result.usage.ttft_ms or (time.perf_counter() - started) * 1000
                    result.content += delta.content
                    emitted = True
                    reporter.output("text")
                    handlers.on_token(delta.content)
                for tc in delta.tool_calls or []:
                    result.usage.ttft_ms = result.usage.ttft_ms or (time.perf_counter() - started) * 1000
                    emitted = True
                    reporter.output("tool_call", (tc.function.name or "") if tc.function is not None else "")
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
        finally:
            counting.cancel()
            reporter.close()
        result.tool_calls = [c for _, c in sorted(calls.items()) if c.name]
        if local is not None:
            result = local.finish(result)
        for n, call in enumerate(result.tool_calls):
            call.id = call.id or f"call_{int(time.time() * 1000)}_{n}"
        result.usage.latency_ms = (time.perf_counter() - started) * 1000
        result.usage.cost = _cost(litellm, model, result.usage)
        return result


def _server_asked_or(
    backoff: Callable[[RetryCallState], float], cap: float
) -> Callable[[RetryCallState], float]:
    """A tenacity wait: as long as the server's Retry-After header asks, else ``backoff``; never over ``cap``."""

    def wait(state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome is not None else None
        asked = _retry_after(err) if err is not None else None
        return min(asked if asked is not None else backoff(state), cap)

    return wait


def _status_of(err: BaseException | None) -> int | None:
    status = getattr(err, "status_code", None)
    return status if isinstance(status, int) else None


def _is_retryable(err: BaseException) -> bool:
    """Worth another try: the service is busy, failing or slow (429, 5xx, timeouts, dropped connections)."""
    if isinstance(err, TimeoutError | ConnectionError):
        return True
    name = type(err).__name__
    if name in {"Timeout", "APIConnectionError", "ServiceUnavailableError", "InternalServerError"}:
        return True
    return _status_of(err) in RETRYABLE_STATUS


def _retry_after(err: BaseException) -> float | None:
    """The seconds a response's Retry-After header asks for (the delay form; an HTTP date is ignored)."""
    headers = getattr(getattr(err, "response", None), "headers", None)
    try:
        return float(headers.get("retry-after")) if headers else None
    except (TypeError, ValueError):
        return None


def _is_budget_error(err: BaseException) -> bool:
    """A LiteLLM proxy (or litellm's own budget manager) refusing because a key's or user's budget is spent."""
    if type(err).__name__ == "BudgetExceededError":
        return True
    text = str(err).lower()
    return "budget" in text and ("exceeded" in text or "over budget" in text)


def _describe_budget(model: str, err: BaseException) -> str:
    message = redact_text(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    return (
        f"the model service's budget for this key or user is used up (model {model!r}): {message[:300]}. "
        "Ask whoever runs the LiteLLM proxy to raise it, or wait until it renews"
    )


def _code_for(status: int | None) -> str:
    return {401: "auth_failed", 403: "forbidden", 404: "model_not_found", 429: "rate_limited"}.get(
        status or 0, "provider_error"
    )


def _describe(model: str, err: BaseException | None, status: int | None) -> str:
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
