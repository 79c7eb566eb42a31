"""The end of a streamed answer, as soon as the provider has sent it.

When a provider's stream ends, litellm does more work before its own stream ends: it assembles the whole
response again, prices it and hands it to its logging callbacks, in a worker thread, once for the usage chunk
and once more for the end (5-50 ms, and a thread that takes the GIL from the event loop meanwhile). With no
callback or cache to hand it to, that work is for nobody: :func:`answer_chunks` stops reading litellm's stream
at the last choice (``finish_reason``), takes the usage from the provider's own last chunks and closes the
stream. Where litellm has callbacks or a cache, or the provider sends no usage (litellm then counts the
tokens), its stream is read to its end as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

#: What in litellm wants its end of stream: logging and tracking callbacks, and its response cache.
LITELLM_LISTENERS = ("callbacks", "success_callback", "_async_success_callback", "cache")

log = logging.getLogger(__name__)


class RawChunks:
    """The provider's stream inside a litellm stream, with a look at each raw chunk before litellm has it.

    litellm drops chunks that carry no content after the first one, and with them llama.cpp's later progress
    reports (those are empty deltas with ``prompt_progress`` beside ``choices``) and the provider's usage; the
    raw chunks keep them.
    """

    def __init__(self, stream: Any, look: Callable[[Any], None]) -> None:
        self._stream = stream
        self._look = look
        self._iterator: Any = None

    def __aiter__(self) -> RawChunks:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        chunk = await self._iterator.__anext__()
        try:
            self._look(chunk)
        except Exception:  # a look must never break the stream
            log.debug("A look at a raw chunk failed", exc_info=True)
        return chunk

    def __getattr__(self, name: str) -> Any:  # close(), aclose(), response, ...
        return getattr(self._stream, name)


def tap_raw_chunks(response: Any, look: Callable[[Any], None]) -> bool:
    """Let ``look`` see the raw chunks of a litellm stream; False when this litellm does not allow it."""
    stream = getattr(response, "completion_stream", None)
    if stream is None or not hasattr(stream, "__aiter__"):
        return False
    response.completion_stream = RawChunks(stream, look)
    return True


def _listens(litellm: Any) -> bool:
    return any(getattr(litellm, name, None) for name in LITELLM_LISTENERS)


async def answer_chunks(response: Any, litellm: Any) -> AsyncIterator[Any]:
    """The chunks of litellm's stream ``response``; past the last choice, one carrying just the ``usage``
    the provider reported (where litellm has nobody to tell about the end of the stream)."""
    reported: list[Any] = []  # the usage the provider reported last

    def keep_usage(chunk: Any) -> None:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            reported[:] = [usage]

    if _listens(litellm) or not tap_raw_chunks(response, keep_usage):
        async for chunk in response:
            yield chunk
        return
    raw = response.completion_stream
    async for chunk in response:
        yield chunk
        if chunk.choices and chunk.choices[0].finish_reason:
            break
    else:
        return
    # After the last choice an OpenAI-style provider sends its usage, if anything (litellm has usually read
    # that already, as it holds the last choice back until the end of the provider's stream).
    async for _ in raw:
        pass
    if not reported:  # litellm counts the tokens at the end of its stream
        async for chunk in response:
            yield chunk
        return
    await response.aclose()
    yield SimpleNamespace(usage=reported[0], choices=[])
