"""The live view of a chat session's browser tab, and a person taking over from the agent.

:class:`LiveBrowser` (``BrowserService.live``) streams a session's current tab to its watchers as JPEG
frames, through CDP's screencast where it can (periodic screenshots otherwise, say with a remote Playwright
server; see :mod:`jupyter_agent.browser.screencast`), and follows the tab when the agent opens another one.
It never starts the browser by itself: a session without a page is reported inactive until the agent, or a
person navigating, opens one.

A person may take control of a session's browser. Their input (click, type, key, scroll, navigate, back,
forward, reload; see :mod:`jupyter_agent.browser.person_input`) then reaches the page, and the agent's
browser calls *wait* until control is handed back: at most ``control_wait`` seconds, after which the call
fails with a message telling the model that a person is using the browser and to try again later. Control
belongs to one holder (a connection); it is released when that holder hands it back or goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from jupyter_agent.browser.person_input import ACTIONS, PersonInput
from jupyter_agent.browser.policy import BrowserError, first_line
from jupyter_agent.browser.screencast import FrameStream, Screencast, Screenshots, page_title
from jupyter_agent.errors import BadRequest, Conflict

if TYPE_CHECKING:
    from jupyter_agent.browser.service import BrowserService

log = logging.getLogger(__name__)

#: What watchers receive: ``{"type": "frame", ...}`` and ``{"type": "state", ...}`` messages.
LiveListener = Callable[[dict[str, Any]], None]


class BrowserControlled(BrowserError):
    """A person kept control of the browser longer than the agent's call could wait."""

    code = "browser_controlled"


@dataclass
class _Control:
    holder: object  # whoever took control (a WebSocket connection); only it may act or hand back
    user: dict[str, Any] | None


@dataclass(eq=False)
class _View:
    """One session's watchers, stream and control flag."""

    session_id: str
    listeners: list[LiveListener] = field(default_factory=list)
    stream: FrameStream | None = None
    last_frame: dict[str, Any] | None = None
    seq: int = 0
    control: _Control | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    agent_waiting: int = 0  # agent calls waiting for control to come back
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one (re)start of the stream at a time

    def __post_init__(self) -> None:
        self.released.set()

    @property
    def idle(self) -> bool:
        return not self.listeners and self.control is None and not self.agent_waiting


class LiveBrowser:
    """Live views, person input and the control flag of a :class:`BrowserService`'s sessions."""

    def __init__(
        self, service: BrowserService, *, control_wait: float = 120.0, screenshot_interval: float = 0.5
    ) -> None:
        self.service = service
        self.input = PersonInput(service)  # performs the input of whoever holds control
        self.control_wait = control_wait  # seconds an agent call waits for a person to hand back control
        self.screenshot_interval = screenshot_interval  # seconds between frames without a screencast
        self.screencast = True  # False: always use periodic screenshots
        self._views: dict[str, _View] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- watching ---------------------------------------------------------------------------------------

    def subscribe(self, session_id: str, listener: LiveListener) -> None:
        """Send ``listener`` this session's frames and state changes; the last frame comes at once."""
        view = self._view(session_id)
        view.listeners.append(listener)
        if view.last_frame is not None and view.stream is not None:
            listener(view.last_frame)
        self._spawn(self._restream(view))

    def unsubscribe(self, session_id: str, listener: LiveListener) -> None:
        view = self._views.get(session_id)
        if view is not None and listener in view.listeners:
            view.listeners.remove(listener)
            self._spawn(self._restream(view))  # the last watcher gone: stop streaming

    def watched(self, session_id: str) -> bool:
        """Someone watches or controls this session's browser (so it must not be closed as idle)."""
        view = self._views.get(session_id)
        return view is not None and not view.idle

    async def state(self, session_id: str) -> dict[str, Any]:
        """``{active, url, title, controlled_by, agent_waiting}``; ``active`` is False while there is no page."""
        view = self._views.get(session_id)
        page = self.service.current_page(session_id)
        title = await page_title(page) if page is not None else ""
        return {
            "type": "state",
            "active": page is not None,
            "url": page.url if page is not None else "",
            "title": title,
            "controlled_by": view.control.user if view and view.control else None,
            "agent_waiting": bool(view and view.agent_waiting),
        }

    # ---- the service's hooks ----------------------------------------------------------------------------

    def page_changed(self, session_id: str) -> None:
        """The session's current tab changed (a first page, a new tab, a replaced or closed one)."""
        view = self._views.get(session_id)
        if view is not None:
            self._spawn(self._restream(view))

    async def agent_may_act(self, session_id: str) -> None:
        """Return when the agent may use this session's browser: at once unless a person has control."""
        view = self._views.get(session_id)
        if view is None or view.control is None:
            return
        view.agent_waiting += 1
        self._spawn(self._broadcast_state(view))
        try:
            async with asyncio.timeout(self.control_wait):
                while view.control is not None:
                    await view.released.wait()
        except TimeoutError:
            who = _name(view.control.user) if view.control else "A person"
            raise BrowserControlled(
                f"{who} is controlling this chat's browser and has not handed it back after "
                f"{self.control_wait:g} s. Try again later, or ask them to hand it back to you."
            ) from None
        finally:
            view.agent_waiting -= 1
            self._spawn(self._broadcast_state(view))
            self._forget_if_idle(view)

    async def close(self) -> None:
        for task in [*self._tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for view in self._views.values():
            if view.stream is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(view.stream.stop(), 2)
        self._views.clear()

    # ---- control ----------------------------------------------------------------------------------------

    def take_control(self, session_id: str, holder: object, user: dict[str, Any] | None) -> None:
        """Give ``holder`` the browser; the agent's next browser calls wait until it is handed back."""
        view = self._view(session_id)
        if view.control is not None and view.control.holder is not holder:
            raise Conflict(
                f"{_name(view.control.user)} is already controlling this browser", code="browser_controlled"
            )
        view.control = _Control(holder, user)
        view.released.clear()
        self._spawn(self._broadcast_state(view))

    def release_control(self, session_id: str, holder: object) -> bool:
        """Hand the browser back to the agent; False when ``holder`` did not have it."""
        view = self._views.get(session_id)
        if view is None or view.control is None or view.control.holder is not holder:
            return False
        view.control = None
        view.released.set()
        self._spawn(self._broadcast_state(view))
        self._forget_if_idle(view)
        return True

    def holds_control(self, session_id: str, holder: object) -> bool:
        view = self._views.get(session_id)
        return view is not None and view.control is not None and view.control.holder is holder

    async def handle_input(self, session_id: str, holder: object, frame: dict[str, Any]) -> None:
        """Check and perform one input frame (``{"action": ..., ...}``) from the holder of control."""
        action = frame.get("action")
        if action not in ACTIONS:
            raise BadRequest(
                f"action must be one of {', '.join(ACTIONS)}, not {action!r}", code="bad_message"
            )
        if not self.holds_control(session_id, holder):
            raise Conflict("take control of the browser before sending input", code="not_in_control")
        await self.input.perform(session_id, frame)

    # ---- streaming --------------------------------------------------------------------------------------

    async def _restream(self, view: _View) -> None:
        """Stream the session's current page while someone watches; stop when nobody does or it has none."""
        async with view.lock:
            page = self.service.current_page(view.session_id) if view.listeners else None
            stream = view.stream
            if stream is not None and stream.page is page and stream.alive:
                return
            was_active = stream is not None
            if stream is not None:
                view.stream = None
                await stream.stop()
            if page is not None:
                view.stream = await self._start(view, page)
            if view.listeners and (was_active or view.stream is not None):
                await self._broadcast_state(view)
            self._forget_if_idle(view)

    async def _start(self, view: _View, page: Page) -> FrameStream:
        def deliver(frame: dict[str, Any]) -> None:
            view.seq += 1
            view.last_frame = {"type": "frame", **frame, "seq": view.seq}
            self._broadcast(view, view.last_frame)

        def lost() -> None:
            self._spawn(self._restream(view))

        stream: FrameStream
        if self.screencast:
            try:
                cdp = await page.context.new_cdp_session(page)
                stream = Screencast(page, deliver, lost, cdp)
                await stream.start()
                return stream
            except PlaywrightError as err:
                log.info("no screencast for the live browser view (%s); using screenshots", first_line(err))
        stream = Screenshots(page, deliver, lost, self.screenshot_interval)
        await stream.start()
        return stream

    async def _broadcast_state(self, view: _View) -> None:
        if view.listeners:
            self._broadcast(view, await self.state(view.session_id))

    def _broadcast(self, view: _View, message: dict[str, Any]) -> None:
        for listener in [*view.listeners]:
            try:
                listener(message)
            except Exception:  # one broken watcher must not stop the others
                log.exception("a live browser watcher failed")

    def _view(self, session_id: str) -> _View:
        view = self._views.get(session_id)
        if view is None:
            view = self._views[session_id] = _View(session_id)
        return view

    def _forget_if_idle(self, view: _View) -> None:
        if view.idle and view.stream is None and self._views.get(view.session_id) is view:
            del self._views[view.session_id]

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live browser view task failed", exc_info=task.exception())


def _name(user: dict[str, Any] | None) -> str:
    if not user:
        return "A person"
    return str(user.get("display_name") or user.get("username") or "A person")


__all__ = ["BrowserControlled", "LiveBrowser", "LiveListener"]
