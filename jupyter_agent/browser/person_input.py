"""A person's input to a chat session's browser tab, once they have taken control from the agent.

The live view's socket sends input frames (``{"action": "click", "x": 10, "y": 20}``); :class:`PersonInput`
checks their fields and performs them on the session's current tab, in page coordinates (CSS pixels of the
viewport). What a person changes makes the agent's cached results stale, and a page their click or
navigation leads to is blanked when the URL policy refuses it. Who may send input is
:class:`~jupyter_agent.browser.live.LiveBrowser`'s part.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from playwright.async_api import Page

from jupyter_agent.errors import BadRequest

if TYPE_CHECKING:
    from jupyter_agent.browser.contexts import BrowserSession
    from jupyter_agent.browser.service import BrowserService

MAX_TEXT = 10_000  # characters one ``type`` input may carry
MAX_SCROLL = 10_000  # pixels one ``scroll`` input may move
ACTIONS = ("click", "type", "key", "scroll", "navigate", "back", "forward", "reload")


class PersonInput:
    """Performs a person's input on a :class:`BrowserService`'s sessions."""

    def __init__(self, service: BrowserService) -> None:
        self.service = service

    async def perform(self, session_id: str, frame: dict[str, Any]) -> None:
        """Perform one input frame whose ``action`` is one of :data:`ACTIONS`, checking its other fields."""
        action = frame.get("action")
        if action == "click":
            await self.click(session_id, _number(frame, "x"), _number(frame, "y"))
        elif action == "type":
            await self.type(session_id, _text(frame, "text", MAX_TEXT))
        elif action == "key":
            await self.key(session_id, _text(frame, "key", 40))
        elif action == "scroll":
            at = (_number(frame, "x"), _number(frame, "y")) if "x" in frame or "y" in frame else None
            await self.scroll(session_id, _number(frame, "dx", 0), _number(frame, "dy", 0), at)
        elif action == "navigate":
            await self.navigate(session_id, _text(frame, "url", 8_000))
        else:
            await self.history(session_id, action)

    # ---- input (in page coordinates, CSS pixels of the viewport) ----------------------------------------

    async def click(self, session_id: str, x: float, y: float) -> None:
        async with self._person(session_id) as s:
            await s.page.mouse.click(*_inside(s.page, x, y))
            await self.service.check_landing(s)

    async def type(self, session_id: str, text: str) -> None:
        async with self._person(session_id) as s:
            await s.page.keyboard.type(text)

    async def key(self, session_id: str, key: str) -> None:
        """Press a key by name: ``Enter``, ``Backspace``, ``ArrowLeft``, ``Control+a``..."""
        async with self._person(session_id) as s:
            await s.page.keyboard.press(key)
            await self.service.check_landing(s)

    async def scroll(
        self, session_id: str, dx: float, dy: float, at: tuple[float, float] | None = None
    ) -> None:
        """Scroll like a mouse wheel, over the point ``at`` (the element under it scrolls) if given."""
        dx, dy = (max(-MAX_SCROLL, min(MAX_SCROLL, d)) for d in (dx, dy))
        async with self._person(session_id) as s:
            if at is not None:
                await s.page.mouse.move(*_inside(s.page, *at))
            await s.page.mouse.wheel(dx, dy)

    async def navigate(self, session_id: str, url: str) -> None:
        """Open ``url`` (through the URL policy); opens the session's browser if it has none yet."""
        url = self.service.policy.check(url)
        await self.service.policy.admit(url)
        async with self._person(session_id) as s:
            await s.page.goto(url, wait_until="domcontentloaded")
            await self.service.check_landing(s)

    async def history(self, session_id: str, action: str) -> None:
        """``back``, ``forward`` or ``reload``."""
        async with self._person(session_id) as s:
            if action == "back":
                await s.page.go_back(wait_until="domcontentloaded")
            elif action == "forward":
                await s.page.go_forward(wait_until="domcontentloaded")
            else:
                await s.page.reload(wait_until="domcontentloaded")
            await self.service.check_landing(s)

    @contextlib.asynccontextmanager
    async def _person(self, session_id: str) -> AsyncIterator[BrowserSession]:
        """The session for a person's input; what they change makes the agent's cached results stale."""
        async with self.service.use(session_id, for_agent=False) as session:
            session.dirty, session.loaded_url = True, None
            yield session


def _inside(page: Page, x: float, y: float) -> tuple[float, float]:
    size = page.viewport_size
    if size is not None and not (0 <= x <= size["width"] and 0 <= y <= size["height"]):
        raise BadRequest(
            f"({x:g}, {y:g}) is outside the {size['width']}x{size['height']} page", code="bad_message"
        )
    return x, y


def _number(frame: dict[str, Any], key: str, default: float | None = None) -> float:
    value = frame.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a number", code="bad_message")
    return float(value)


def _text(frame: dict[str, Any], key: str, limit: int) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"{key} must be a string of 1 to {limit} characters", code="bad_message")
    return value
