"""The live view of a chat session's browser tab, and a person taking over from the agent.

:class:`LiveBrowser` (``BrowserService.live``) streams a session's current tab to its watchers as JPEG
frames, through CDP's screencast where it can (periodic screenshots otherwise, say with a remote Playwright
server), and follows the tab when the agent opens another one. It never starts the browser by itself: a
session without a page is reported inactive until the agent, or a person navigating, opens one.

A person may take control of a session's browser. Their input (click, type, key, scroll, navigate, back,
forward, reload) then reaches the page, and the agent's browser calls *wait* until control is handed back:
at most ``control_wait`` seconds, after which the call fails with a message telling the model that a person
is using the browser and to try again later. Control belongs to one holder (a connection); it is released
when that holder hands it back or goes away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from playwright.async_api import CDPSession, Page
from playwright.async_api import Error as PlaywrightError

from jupyter_agent.browser.policy import BrowserError, UrlRefused
from jupyter_agent.errors import BadRequest, Conflict

if TYPE_CHECKING:
    from jupyter_agent.browser.service import BrowserService, BrowserSession

log = logging.getLogger(__name__)

#: What watchers receive: ``{"type": "frame", ...}`` and ``{"type": "state", ...}`` messages.
LiveListener = Callable[[dict[str, Any]], None]

SCREENCAST = {"format": "jpeg", "quality": 60, "maxWidth": 1280, "maxHeight": 800}
MAX_TEXT = 10_000  # characters one ``type`` input may carry
MAX_SCROLL = 10_000  # pixels one ``scroll`` input may move
ACTIONS = ("click", "type", "key", "scroll", "navigate", "back", "forward", "reload")


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
    stream: _Stream | None = None
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
        title = await _title(page) if page is not None else ""
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
            await self._check_landing(s)

    async def type(self, session_id: str, text: str) -> None:
        async with self._person(session_id) as s:
            await s.page.keyboard.type(text)

    async def key(self, session_id: str, key: str) -> None:
        """Press a key by name: ``Enter``, ``Backspace``, ``ArrowLeft``, ``Control+a``..."""
        async with self._person(session_id) as s:
            await s.page.keyboard.press(key)
            await self._check_landing(s)

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
        async with self._person(session_id) as s:
            await s.page.goto(url, wait_until="domcontentloaded")
            await self._check_landing(s)

    async def history(self, session_id: str, action: str) -> None:
        """``back``, ``forward`` or ``reload``."""
        async with self._person(session_id) as s:
            if action == "back":
                await s.page.go_back(wait_until="domcontentloaded")
            elif action == "forward":
                await s.page.go_forward(wait_until="domcontentloaded")
            else:
                await s.page.reload(wait_until="domcontentloaded")
            await self._check_landing(s)

    async def _check_landing(self, session: BrowserSession) -> None:
        """Blank the page when the person's click or navigation led to a URL the policy refuses."""
        url = session.page.url
        refusal = None if url == "about:blank" else self.service.policy.refusal(url)
        if refusal:
            await session.page.goto("about:blank")
            raise UrlRefused(f"the browser was led to a refused URL: {refusal}")

    @contextlib.asynccontextmanager
    async def _person(self, session_id: str) -> AsyncIterator[BrowserSession]:
        """The session for a person's input; what they change makes the agent's cached results stale."""
        async with self.service.use(session_id, for_agent=False) as session:
            session.dirty, session.loaded_url = True, None
            yield session

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

    async def _start(self, view: _View, page: Page) -> _Stream:
        def deliver(frame: dict[str, Any]) -> None:
            view.seq += 1
            view.last_frame = {"type": "frame", **frame, "seq": view.seq}
            self._broadcast(view, view.last_frame)

        def lost() -> None:
            self._spawn(self._restream(view))

        stream: _Stream
        if self.screencast:
            try:
                cdp = await page.context.new_cdp_session(page)
                stream = _Screencast(page, deliver, lost, cdp)
                await stream.start()
                return stream
            except PlaywrightError as err:
                log.info("no screencast for the live browser view (%s); using screenshots", _first_line(err))
        stream = _Screenshots(page, deliver, lost, self.screenshot_interval)
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


class _Stream:
    """Frames of one page: ``deliver`` gets ``{data, url, title, width, height}``; ``lost`` is called when
    the page goes away."""

    def __init__(self, page: Page, deliver: Callable[[dict[str, Any]], None], lost: Callable[[], None]):
        self.page = page
        self.alive = True
        self._deliver = deliver
        self._lost = lost
        self._title = ""
        self._last: tuple[str, float, float] | None = None
        self._resends: set[asyncio.Task[None]] = set()
        page.on("close", self._on_close)
        page.on("crash", self._on_close)
        page.on("framenavigated", self._on_navigated)

    def _on_navigated(self, frame: Any) -> None:
        """A navigation to a page that paints the same pixels sends no new frame: resend the last picture
        with the new URL, so watchers' URL bars follow every navigation."""
        if self.alive and self._last is not None and frame == self.page.main_frame:
            task = asyncio.ensure_future(self._send(*self._last))
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)

    def _on_close(self, _page: Page) -> None:
        if self.alive:
            self.alive = False
            self._lost()

    async def _send(self, data: str, width: float, height: float) -> None:
        self._last = (data, width, height)
        self._title = await _title(self.page, self._title)
        self._deliver(
            {
                "data": data,
                "url": self.page.url,
                "title": self._title,
                "width": round(width),
                "height": round(height),
            }
        )

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self.alive = False
        self.page.remove_listener("close", self._on_close)
        self.page.remove_listener("crash", self._on_close)
        self.page.remove_listener("framenavigated", self._on_navigated)
        for task in [*self._resends]:
            task.cancel()


class _Screencast(_Stream):
    """CDP ``Page.startScreencast``: Chromium sends a frame when the page repaints, the next one only after
    we acknowledge this one, so a slow watcher slows the stream instead of queueing frames."""

    def __init__(self, page: Page, deliver: Any, lost: Any, cdp: CDPSession) -> None:
        super().__init__(page, deliver, lost)
        self._cdp = cdp
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._cdp.on("Page.screencastFrame", self._on_frame)
        await self._cdp.send("Page.startScreencast", SCREENCAST)

    def _on_frame(self, params: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._forward(params))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _forward(self, params: dict[str, Any]) -> None:
        if not self.alive:
            return
        meta = params.get("metadata", {})
        size = self.page.viewport_size or {"width": 0, "height": 0}
        await self._send(
            params["data"], meta.get("deviceWidth", size["width"]), meta.get("deviceHeight", size["height"])
        )
        with contextlib.suppress(PlaywrightError):
            await self._cdp.send("Page.screencastFrameAck", {"sessionId": params["sessionId"]})

    async def stop(self) -> None:
        await super().stop()
        for task in [*self._pending]:
            task.cancel()
        with contextlib.suppress(PlaywrightError):
            await self._cdp.send("Page.stopScreencast")
        with contextlib.suppress(PlaywrightError):
            await self._cdp.detach()


class _Screenshots(_Stream):
    """A JPEG screenshot every ``interval`` seconds, sent when it differs from the last one."""

    def __init__(self, page: Page, deliver: Any, lost: Any, interval: float) -> None:
        super().__init__(page, deliver, lost)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last = b""
        while self.alive:
            try:
                jpeg = await self.page.screenshot(type="jpeg", quality=SCREENCAST["quality"], timeout=10_000)
            except PlaywrightError as err:
                if self.page.is_closed():
                    return
                log.debug("live view screenshot failed: %s", _first_line(err))
            else:
                digest = hashlib.blake2b(jpeg, digest_size=16).digest()
                if digest != last:
                    last = digest
                    size = self.page.viewport_size or {"width": 0, "height": 0}
                    await self._send(base64.b64encode(jpeg).decode("ascii"), size["width"], size["height"])
            await asyncio.sleep(self._interval)  # polling is the point of this fallback

    async def stop(self) -> None:
        await super().stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _title(page: Page, fallback: str = "") -> str:
    """The page's title; ``fallback`` while it is navigating (its document is not there to ask)."""
    try:
        return await asyncio.wait_for(page.title(), 2)
    except (PlaywrightError, TimeoutError):
        return fallback


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


def _name(user: dict[str, Any] | None) -> str:
    if not user:
        return "A person"
    return str(user.get("display_name") or user.get("username") or "A person")


def _first_line(err: BaseException) -> str:
    return (getattr(err, "message", None) or str(err)).split("\n", 1)[0].strip()


__all__ = ["BrowserControlled", "LiveBrowser", "LiveListener"]
