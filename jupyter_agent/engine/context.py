"""Keeping every model call inside the model's context window.

Before each call the request is measured in tokens (litellm's counter; each message counted once and
remembered, so the cost per call stays flat as a session grows). The window is ``c.JupyterAgent.context_tokens``
when set, else the embedded model's ``n_ctx``, else litellm's ``max_input_tokens`` for the model. What the
model reads is fitted in three moves, each only when the one before did not suffice:

1. every tool result is capped (an eighth of the window, at most 4,000 tokens) with its head and tail kept and a note saying
   how to read the rest (``read_result``), and results of earlier steps are cut shorter still;
2. the conversation before the current turn is summarised by the model into a short memory (decisions, file
   and cell names, results): a ``compaction`` event the chat shows; the full history stays in the store;
3. the current turn's own older results are cut to a few lines.

The system prompt, the current goal (the turn's prompt) and the latest step are never dropped. A turn that
still does not fit ends with a clear error instead of a request the provider would refuse.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jupyter_agent.errors import AgentError

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 32_768  # tokens, for a model litellm knows nothing about
OUTPUT_SHARE = 0.25  # of the window kept free for the answer (at most MAX_OUTPUT_RESERVE)
MAX_OUTPUT_RESERVE = 8_192
COMPACT_AT = 0.85  # of what is left for the prompt: above it, the transcript is fitted
CHARS_PER_TOKEN = 3.5  # to turn a token budget into characters to keep (conservative for code and numbers)
RESULT_TOKENS = 4_000  # the most of one tool result the model reads (an eighth of a small window)
OLD_RESULT_TOKENS = 150  # what a result of an earlier step keeps once the transcript is fitted
SUMMARY_TOKENS = 600  # the memory's size, asked of the model

#: What precedes the memory in the system prompt (the embedded model's adapter carries it over to its own).
MEMORY_HEADING = "Memory of the earlier conversation (summarised; the full log is kept):"

SUMMARY_PROMPT = """Summarise the conversation below for your own memory: you will continue it with only \
this summary and the latest request. Keep every decision, file and notebook path, cell id, variable name, \
number and result that later work may need, and what is still to do; drop pleasantries and tool chatter. \
Write at most {words} words, as short bullet points."""


@dataclass
class Fitted:
    """The messages of one call, and what fitting them did."""

    messages: list[dict[str, Any]]
    tokens: int
    window: int
    cut: int = 0  # tool results shortened


class ContextWindow:
    """Measures requests and fits transcripts into the model's window (one per engine)."""

    def __init__(
        self,
        llm: Any,
        configured: int = 0,
        counter: Callable[[str], int] | None = None,
    ) -> None:
        self.llm = llm
        self.configured = configured  # c.JupyterAgent.context_tokens, or the embedded model's n_ctx; 0: ask
        self._counter = counter
        self._counts: dict[str, int] = {}
        self._windows: dict[str, int] = {}

    # -- measuring ------------------------------------------------------------------------------------------
    async def window(self, model: str) -> int:
        if self.configured:
            return self.configured
        if model not in self._windows:
            self._windows[model] = await self._model_window(model)
        return self._windows[model]

    async def _model_window(self, model: str) -> int:
        from jupyter_agent.engine.llm import get_litellm

        litellm = await get_litellm()
        try:
            info = litellm.get_model_info(model)
        except Exception:  # a model litellm does not list (a proxy alias, a local server)
            return DEFAULT_WINDOW
        return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_WINDOW)

    def count_text(self, text: str) -> int:
        """Tokens of ``text`` (remembered by content: a message is counted once however often it is sent)."""
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        found = self._counts.get(key)
        if found is None:
            found = self._counts[key] = self._count(text)
            if len(self._counts) > 50_000:  # a long-lived server: forget the oldest half
                for old in list(self._counts)[:25_000]:
                    del self._counts[old]
        return found

    def _count(self, text: str) -> int:
        if self._counter is not None:
            return self._counter(text)
        import sys

        litellm = sys.modules.get("litellm")  # loaded by the time a model is called; else an estimate
        if litellm is not None:
            try:
                return int(litellm.token_counter(text=text))
            except Exception:
                log.debug("litellm could not count a text; estimating", exc_info=True)
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def count(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
        total = 3
        for message in messages:
            total += 4 + self.count_text(_message_text(message))
        if tools:
            import json

            total += self.count_text(json.dumps(tools, sort_keys=True))
        return total

    # -- fitting --------------------------------------------------------------------------------------------
    async def fit(
        self,
        model: str,
        system: str,
        history: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        current: int,
        summarise: Callable[[list[dict[str, Any]]], Awaitable[None]] | None,
    ) -> Fitted:
        """The messages for one call within the window.

        ``history`` is the transcript (the model's view), ``current`` the index in it of the current turn's
        prompt. ``summarise(older)`` asks the model for a memory of ``older`` and records it (the caller's
        transcript then starts at the current turn); it is called at most once, and only when needed.
        """
        window = await self.window(model)
        budget = self._prompt_budget(window)
        cap = max(256, min(window // 8, RESULT_TOKENS))
        messages = [{"role": "system", "content": system}, *cap_results(history, cap)]
        tokens = self.count(messages, tools)
        if tokens <= budget * COMPACT_AT:
            return Fitted(messages, tokens, window, cut=_cut(messages))
        # 1. Earlier steps' results cut short (the latest step's are what the model works on now).
        latest = _latest_step(history)
        shortened = cap_results(history, cap, older_than=latest, older_cap=OLD_RESULT_TOKENS)
        messages = [{"role": "system", "content": system}, *shortened]
        tokens = self.count(messages, tools)
        if tokens <= budget * COMPACT_AT:
            return Fitted(messages, tokens, window, cut=_cut(messages))
        # 2. The conversation before this turn, summarised (the caller rebuilds its transcript from it).
        if summarise is not None and current > 0:
            raise Compact(history[:current])
        # 3. This turn's own older results, cut to a few lines.
        shortened = cap_results(history, cap, older_than=latest, older_cap=40)
        messages = [{"role": "system", "content": system}, *shortened]
        tokens = self.count(messages, tools)
        if tokens <= budget:
            return Fitted(messages, tokens, window, cut=_cut(messages))
        raise AgentError(
            f"this turn no longer fits the model's context window ({tokens:,} tokens of {window:,}), even "
            "with earlier results cut and the conversation summarised; start a new session, or set a larger "
            "c.JupyterAgent.context_tokens for a model with a bigger window",
            code="context_overflow",
        )

    def _prompt_budget(self, window: int) -> int:
        return window - min(MAX_OUTPUT_RESERVE, int(window * OUTPUT_SHARE))


class Compact(Exception):
    """Raised by :meth:`ContextWindow.fit` when the conversation before the current turn must be summarised."""

    def __init__(self, older: list[dict[str, Any]]) -> None:
        super().__init__("the transcript must be summarised")
        self.older = older


def cap_results(
    history: list[dict[str, Any]], cap: int, older_than: int | None = None, older_cap: int = 0
) -> list[dict[str, Any]]:
    """``history`` with each tool result cut to ``cap`` tokens (those before index ``older_than`` to
    ``older_cap``), head and tail kept, saying how to read the rest."""
    out = []
    for index, message in enumerate(history):
        if message.get("role") == "tool" and isinstance(message.get("content"), str):
            limit = older_cap if older_than is not None and index < older_than else cap
            message = {**message, "content": shorten(message["content"], limit, message.get("tool_call_id"))}
        out.append(message)
    return out


CUT_NOTE = (
    "[... {n:,} characters cut: call read_result with call_id={call_id!r} and offset={offset} to read them]"
)


def shorten(text: str, tokens: int, call_id: Any = None) -> str:
    """``text`` within about ``tokens`` tokens: its head and tail, with a note on reading the cut part."""
    keep = int(tokens * CHARS_PER_TOKEN)
    if len(text) <= keep or "characters cut: call read_result" in text[:keep]:
        return text
    head = text[: keep * 2 // 3]
    tail = text[len(text) - keep // 3 :] if keep >= 60 else ""
    note = CUT_NOTE.format(n=len(text) - len(head) - len(tail), call_id=call_id or "", offset=len(head))
    return f"{head}\n{note}\n{tail}" if tail else f"{head}\n{note}"


def _latest_step(history: list[dict[str, Any]]) -> int:
    """The index of the last assistant message (its tool results are the latest step's)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "assistant":
            return index
    return len(history)


def _cut(messages: list[dict[str, Any]]) -> int:
    return sum(
        1
        for m in messages
        if m.get("role") == "tool" and "characters cut: call read_result" in str(m.get("content"))
    )


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        text = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text += " [image]" * sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    else:
        text = str(content or "")
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        text += f" {fn.get('name', '')} {fn.get('arguments', '')}"
    return text


def transcript_text(messages: list[dict[str, Any]], limit: int) -> str:
    """The conversation as plain text for the summariser, long tool results cut (at most ``limit`` chars)."""
    lines = []
    for message in messages:
        role = message.get("role")
        text = _message_text(message)
        if role == "tool":
            text = shorten(text, 300)
        lines.append(f"{role}: {text}")
    joined = "\n".join(lines)
    return joined if len(joined) <= limit else joined[: limit // 3] + "\n[...]\n" + joined[-2 * limit // 3 :]
