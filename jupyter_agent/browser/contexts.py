"""The browser process and its contexts: one warm Chromium per service, one context per chat session.

Playwright and the browser start on first use and stay up. A pool of ready contexts (each with a blank
page) lets a new session start without waiting; a session keeps its context, so cookies and storage never
cross sessions. A crashed browser is replaced: the session that meets it gets :class:`BrowserCrashed`, its
next call works. Idle sessions are closed; the browser restarts when it outgrows its memory limit.

Every request a page makes passes the network policy (:meth:`UrlPolicy.request_refusal
<jupyter_agent.browser.policy.UrlPolicy.request_refusal>`) twice over: Playwright's ``route`` checks each
request of every context (navigations, sub-resources, frames) and aborts refused ones, and a launched
Chromium reaches the network only through :class:`~jupyter_agent.browser.proxy.PinningProxy`, which checks
the hops of redirects too (``route`` never sees them) and connects to the addresses it checked. A remote
browser (``endpoint``) has no such proxy: its redirects and its DNS look-ups are its own, so it belongs
behind an egress policy of its own. Chromium runs in its sandbox whenever the platform allows
(:mod:`~jupyter_agent.browser.sandbox`); :meth:`BrowserContexts.health` says whether it does.

What is done with a session's page (and a crashed page's replacement) is
:class:`~jupyter_agent.browser.service.BrowserService`'s part.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from jupyter_agent.browser import BrowserConfig
from jupyter_agent.browser.cache import ResponseCache
from jupyter_agent.browser.live import LiveBrowser
from jupyter_agent.browser.policy import BrowserError, first_line
from jupyter_agent.browser.proxy import PinningProxy
from jupyter_agent.browser.sandbox import sandbox_failure, sandbox_plan

log = logging.getLogger(__name__)


class BrowserCrashed(BrowserError):
    """The page or the browser crashed during (or before) this call; it has been replaced."""

    code = "browser_crashed"


class BrowserUnavailable(RuntimeError):
    """The browser could not be started or reached. Deliberately not a ``ToolError``: the tool router counts
    it as an infrastructure failure (circuit breaker, fallbacks such as plain HTTP), not the model's."""

    code = "browser_unavailable"


@dataclass(eq=False)
class BrowserSession:
    """One chat session's browser state; :meth:`BrowserService.use` hands it out under its lock."""

    id: str
    context: BrowserContext
    page: Page  # the current tab
    generation: int  # the browser it lives in
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    crashed: bool = False
    dirty: bool = False  # changed by click, type or scroll since it loaded
    loaded_url: str | None = None  # the URL last navigated to, as requested
    no_store: bool = False  # the loaded document said Cache-Control: no-store
    pending: asyncio.Task[None] | None = None  # a navigation started after a cache hit
    cdp: tuple[Page, CDPSession] | None = None  # the current tab's CDP session, for fast screenshots
    blocked: deque[str] = field(default_factory=lambda: deque(maxlen=20))  # requests the policy refused


class BrowserContexts:
    """Owns the browser process, the context pool and the sessions. Use it from one event loop.

    The base of :class:`~jupyter_agent.browser.service.BrowserService`, which adds what is done with a
    session's page (the live view's input goes through its ``use``); only that class is meant to be built.
    """

    def __init__(self, config: BrowserConfig | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.config = config or BrowserConfig()
        self.policy = self.config.url_policy()
        self.cache = ResponseCache(self.config.cache_max_bytes, self.config.cache_ttl, clock)
        self.stats = {"launches": 0, "crashes": 0, "restarts": 0, "pool_hits": 0, "pool_misses": 0}
        #: Resident memory of the browser's processes (MB) at the last housekeeping round; None: not known.
        self.memory_mb: float | None = None
        self._clock = clock
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._generation = 0  # bumped whenever the browser goes away; older sessions are stale
        self._lost_reason = "crashed"  # why the last browser went away, for the error text
        self._disconnected: dict[int, asyncio.Event] = {}
        self._pool: list[tuple[BrowserContext, Page, int, deque[str]]] = []
        self._sessions: dict[str, BrowserSession] = {}
        self._start_lock = asyncio.Lock()
        self._session_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refill: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._closed = False
        self._proxy: PinningProxy | None = None
        self._sandbox_failed: str | None = None  # why Chromium could not start in its sandbox
        self.live = LiveBrowser(self)  # live views of the sessions' tabs, and people taking control

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the browser if needed and wait until the pool holds ``pool_size`` ready contexts."""
        await self._ensure_browser()
        await asyncio.shield(self._schedule_refill())

    async def close(self) -> None:
        """Close every session, the browser and Playwright's driver (bounded to a few seconds)."""
        self._closed = True
        await self.live.close()
        for task in [*self._tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        browser, self._browser = self._browser, None
        self._sessions.clear()
        self._pool.clear()
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            if browser is not None:
                await asyncio.wait_for(browser.close(), 5)
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            if self._playwright is not None:
                await asyncio.wait_for(self._playwright.stop(), 5)
        self._playwright = None
        if self._proxy is not None:
            await self._proxy.close()

    async def _ensure_browser(self) -> Browser:
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        async with self._start_lock:
            if self._closed:
                raise BrowserUnavailable("the browser service is shut down")
            if self._browser is None or not self._browser.is_connected():
                try:
                    self._playwright = self._playwright or await async_playwright().start()
                    browser = await self._launch(self._playwright)
                except PlaywrightError as err:
                    raise BrowserUnavailable(f"could not start the browser: {first_line(err)}") from err
                self._generation += 1
                generation = self._generation
                self._disconnected[generation] = asyncio.Event()
                browser.on("disconnected", lambda _browser: self._on_disconnected(generation))
                self._browser = browser
                self.stats["launches"] += 1
                self._schedule_refill()
                self._housekeeping = self._housekeeping or self._spawn(self._housekeep())
            return self._browser

    async def _launch(self, playwright: Playwright) -> Browser:
        cfg, timeout = self.config, self.config.nav_timeout * 1000
        if cfg.endpoint and cfg.endpoint.startswith(("ws://", "wss://")) and "/devtools/" not in cfg.endpoint:
            return await playwright.chromium.connect(cfg.endpoint, timeout=timeout)  # a Playwright server
        if cfg.endpoint:
            return await playwright.chromium.connect_over_cdp(cfg.endpoint, timeout=timeout)
        if self._proxy is None:
            self._proxy = PinningProxy(self.policy)
        launch = functools.partial(
            playwright.chromium.launch,
            executable_path=cfg.executable_path,
            args=cfg.launch_args,
            proxy={"server": await self._proxy.start()},  # Playwright sends loopback through it too
        )
        if not self.sandbox[0]:
            return await launch(chromium_sandbox=False)
        try:
            return await launch(chromium_sandbox=True)
        except PlaywrightError as err:
            reason = sandbox_failure(getattr(err, "message", None) or str(err))
            if reason is None:
                raise
        self._sandbox_failed = f"Chromium could not set up its sandbox: {reason}"
        log.warning("the browser runs without its sandbox: %s", reason)
        return await launch(chromium_sandbox=False)

    @property
    def sandbox(self) -> tuple[bool | None, str]:
        """Whether Chromium runs (or will run) in its sandbox, and why not; None for a remote browser."""
        if self.config.endpoint:
            return None, "a remote browser (browser_endpoint): its own settings decide"
        if self._sandbox_failed:
            return False, self._sandbox_failed
        return sandbox_plan(self.config.launch_args)

    def health(self) -> dict[str, Any]:
        """For the server's health report: whether the browser runs, in its sandbox, behind the proxy."""
        sandboxed, reason = self.sandbox
        return {
            "running": self._browser is not None and self._browser.is_connected(),
            "sandbox": sandboxed,
            "sandbox_reason": reason,
            "address_pinning": not self.config.endpoint,  # the proxy; a remote browser resolves itself
        }

    def _on_disconnected(self, generation: int) -> None:
        self._disconnected[generation].set()
        if generation != self._generation or self._closed:
            return  # a restart or shutdown we asked for
        self._browser, self._lost_reason = None, "crashed"
        self._generation += 1  # its sessions are stale from now on, even before the restart is done
        self._pool.clear()
        self.stats["crashes"] += 1
        log.warning("the browser disconnected unexpectedly; restarting it")
        self._spawn(self._restart_now())

    async def _restart_now(self) -> None:
        """Start the next browser at once, so the next call finds it warm."""
        try:
            await self._ensure_browser()
        except BrowserUnavailable as err:
            log.error("browser restart failed: %s", err)

    async def restart(self, reason: str) -> None:
        """Replace the browser; every session loses its pages, and its next call is told ``reason``."""
        browser, self._browser = self._browser, None
        self._lost_reason = reason
        self._generation += 1
        self._pool.clear()
        self.stats["restarts"] += 1
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            if browser is not None:
                await asyncio.wait_for(browser.close(), 5)
        await self._ensure_browser()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- the pool of ready contexts ---------------------------------------------------------------------

    async def _new_ready(self, browser: Browser) -> tuple[BrowserContext, Page, int, deque[str]]:
        cfg, (width, height) = self.config, self.config.viewport
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            accept_downloads=cfg.downloads,
            service_workers="block",  # a service worker's requests would not pass the route below
        )
        context.set_default_timeout(cfg.action_timeout * 1000)
        context.set_default_navigation_timeout(cfg.nav_timeout * 1000)
        blocked: deque[str] = deque(maxlen=20)
        await context.route("**/*", functools.partial(self._guard_request, blocked))
        return context, await context.new_page(), self._generation, blocked

    async def _guard_request(self, blocked: deque[str], route: Route) -> None:
        """Abort a request whose address the network policy refuses. Chromium resolves the host again when
        it connects; for a launched browser the proxy pins the address, for a remote one that is a window."""
        url = route.request.url
        refusal = await self.policy.request_refusal(url)
        with contextlib.suppress(PlaywrightError):  # the page or context may be gone by now
            if refusal is None:
                await route.continue_()
                return
            blocked.append(f"{url} ({refusal})")
            log.debug("the browser's request was refused: %s", refusal)
            await route.abort("blockedbyclient")

    def _schedule_refill(self) -> asyncio.Task[None]:
        if self._refill is None or self._refill.done():
            self._refill = self._spawn(self._fill_pool())
        return self._refill

    async def _fill_pool(self) -> None:
        while not self._closed and len(self._pool) < self.config.pool_size:
            browser = self._browser
            if browser is None or not browser.is_connected():
                return
            try:
                self._pool.append(await self._new_ready(browser))
            except PlaywrightError as err:
                log.warning("could not pre-create a browser context: %s", first_line(err))
                return

    async def _take_ready(self) -> tuple[BrowserContext, Page, int, deque[str]]:
        browser = await self._ensure_browser()
        ready = None
        while self._pool and ready is None:
            candidate = self._pool.pop(0)
            if candidate[2] == self._generation and not candidate[1].is_closed():
                ready = candidate
        self.stats["pool_hits" if ready else "pool_misses"] += 1
        ready = ready or await self._new_ready(browser)
        self._schedule_refill()
        return ready

    def pool_state(self) -> dict[str, int]:
        """How many contexts sessions use and how many wait warm in the pool (for the metrics)."""
        return {"session": len(self._sessions), "pooled": len(self._pool)}

    def pooled_contexts(self) -> list[BrowserContext]:
        """The ready contexts waiting in the pool (for tests and diagnostics)."""
        return [context for context, *_rest in self._pool]

    # ---- sessions ---------------------------------------------------------------------------------------

    async def _session(self, session_id: str) -> BrowserSession:
        session = self._sessions.get(session_id)
        if session is not None and session.generation == self._generation:
            return session  # the common case takes no lock: a cache hit must not wait for other sessions
        async with self._session_lock:
            session = self._sessions.get(session_id)
            if session is not None and session.generation != self._generation:
                del self._sessions[session_id]
                await self._ensure_browser()
                raise BrowserCrashed(
                    f"the browser {self._lost_reason} and was restarted; this session's pages, cookies "
                    "and storage were lost. Navigate again to continue."
                )
            if session is None:
                try:
                    context, page, generation, blocked = await self._take_ready()
                except PlaywrightError as err:
                    raise BrowserUnavailable(f"could not open a browser tab: {first_line(err)}") from err
                session = BrowserSession(session_id, context, page, generation, self._clock())
                session.blocked = blocked
                self._watch(session, page)
                context.on("page", lambda new_page: self._on_new_page(session, new_page))
                self._sessions[session_id] = session
                self.live.page_changed(session_id)
            return session

    def _watch(self, session: BrowserSession, page: Page) -> None:
        def on_crash(crashed: Page) -> None:
            if crashed is session.page:
                session.crashed = True

        page.on("crash", on_crash)

    def _on_new_page(self, session: BrowserSession, page: Page) -> None:
        """A tab the page opened (``target=_blank``, ``window.open``) becomes the current page."""
        self._watch(session, page)
        session.page, session.dirty, session.loaded_url = page, True, None
        pages = session.context.pages
        excess = max(len(pages) - self.config.max_pages_per_session, 0)
        for old in [p for p in pages if p is not page][:excess]:  # oldest first
            self._spawn(old.close())
        self.live.page_changed(session.id)

    def current_page(self, session_id: str) -> Page | None:
        """The session's current tab, or None when it has none (this never starts the browser)."""
        session = self._sessions.get(session_id)
        if session is None or session.generation != self._generation or session.crashed:
            return None
        return None if session.page.is_closed() else session.page

    def session_context(self, session_id: str) -> BrowserContext | None:
        session = self._sessions.get(session_id)
        return session.context if session else None

    async def close_session(self, session_id: str) -> None:
        """Close a session's context (say, when its chat is deleted); a later call starts a fresh one."""
        session = self._sessions.pop(session_id, None)
        self.cache.discard(lambda key: isinstance(key, tuple) and len(key) > 1 and key[1] == session_id)
        if session is not None:
            with contextlib.suppress(PlaywrightError):
                await session.context.close()
            self.live.page_changed(session_id)

    async def reap_idle(self) -> list[str]:
        """Close sessions unused for ``idle_timeout`` seconds; returns their ids."""
        now, limit = self._clock(), self.config.idle_timeout
        idle = [
            s.id
            for s in self._sessions.values()
            if now - s.last_used > limit and not s.lock.locked() and not self.live.watched(s.id)
        ]
        for session_id in idle:
            await self.close_session(session_id)
        return idle

    async def check_memory(self) -> bool:
        """Measure the browser's memory (:attr:`memory_mb`); restart it if its processes use more than
        ``memory_limit_mb``. True when it restarted."""
        limit = self.config.memory_limit_mb
        if self._browser is None or self.config.endpoint:
            self.memory_mb = None
            return False
        rss = self.memory_mb = await self.browser_rss_mb()
        if not limit or rss is None or rss <= limit or any(s.lock.locked() for s in self._sessions.values()):
            return False
        log.warning("the browser uses %.0f MB, over its limit of %d MB; restarting it", rss, limit)
        await self.restart(f"used {rss:.0f} MB, over its memory limit of {limit} MB,")
        return True

    async def browser_pids(self) -> list[int]:
        """Process ids of the browser (first) and its helpers, from Chromium's own process list."""
        if self._browser is None:
            return []
        cdp = await self._browser.new_browser_cdp_session()
        try:
            info = await cdp.send("SystemInfo.getProcessInfo")
        finally:
            with contextlib.suppress(PlaywrightError):
                await cdp.detach()
        processes = sorted(info.get("processInfo", []), key=lambda p: p.get("type") != "browser")
        return [p["id"] for p in processes]

    async def browser_rss_mb(self) -> float | None:
        """Resident memory of all browser processes in MB (from /proc); None where unknown."""
        try:
            pids = await self.browser_pids()
        except PlaywrightError:
            return None
        total_kb = 0
        for pid in pids:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
                total_kb += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        return total_kb / 1024 if total_kb else None

    async def _housekeep(self) -> None:
        interval = max(1.0, min(self.config.idle_timeout / 4, 30.0))
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.reap_idle()
                await self.check_memory()
            except (PlaywrightError, BrowserError, BrowserUnavailable) as err:
                log.warning("browser housekeeping failed: %s", err)
