"""A small in-memory cache of browser results: LRU bounded by bytes, with a time to live.

Keys are tuples such as ``("navigate", session_id, url)``; values are JSON-like results. Responses that say
``Cache-Control: no-store`` are never stored (:func:`forbids_storing`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any


def forbids_storing(headers: Mapping[str, str]) -> bool:
    """Whether response headers (lower-case names, as Playwright gives them) forbid storing the result."""
    directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
    return "no-store" in directives


def estimate_size(value: Any) -> int:
    """Rough size in bytes of a JSON-like value (what it would take as UTF-8 JSON)."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    return len(json.dumps(value, default=str).encode("utf-8", "replace"))


@dataclass
class _Entry:
    value: Any
    size: int
    expires: float


class ResponseCache:
    """LRU cache bounded by ``max_bytes``; entries expire ``ttl`` seconds after they are stored.

    ``clock`` is injectable so tests can move time on without sleeping.
    """

    def __init__(self, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.expires > self._clock()

    def get(self, key: Hashable) -> Any | None:
        """The live value for ``key`` (marked most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock():
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def put(self, key: Hashable, value: Any, *, size: int | None = None) -> bool:
        """Store ``value``; returns False when it is larger than the whole cache (then nothing is stored)."""
        size = estimate_size(value) if size is None else size
        if key in self._entries:
            self._drop(key)
        if size > self.max_bytes or self.ttl <= 0:
            return False
        self._entries[key] = _Entry(value, size, self._clock() + self.ttl)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def discard(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key matches ``predicate`` (e.g. all of one session's entries)."""
        for key in [k for k in self._entries if predicate(k)]:
            self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= entry.size
