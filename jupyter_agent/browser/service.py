"""The browser operations the agent's tools call, on a chat session's current page.

:class:`BrowserService` holds a session for one operation at a time: it waits for the session's earlier work
and, for the agent, for a person to hand back control (see :mod:`jupyter_agent.browser.live`), and turns
Playwright errors into :class:`~jupyter_agent.browser.policy.BrowserError`s the model can read. A crashed
page is replaced by a blank one: the call that meets it gets
:class:`~jupyter_agent.browser.contexts.BrowserCrashed`, the next call works. The browser process, the pool
of contexts and the sessions are :class:`~jupyter_agent.browser.contexts.BrowserContexts`'s part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from jupyter_agent.browser import analyze
from jupyter_agent.browser.cache import forbids_storing
from jupyter_agent.browser.contexts import BrowserContexts, BrowserCrashed, BrowserSession
from jupyter_agent.browser.policy import BrowserError, UrlRefused, first_line

log = logging.getLogger(__name__)
_PAGE_LOST = "the page crashed and was replaced by a blank page (its tab was restarted); navigate again."


class BrowserService(BrowserContexts):
    """A shared browser for the agent's tools: a session per chat, held for one operation at a time."""

    # ---- using a session --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, session_id: str, *, for_agent: bool = True) -> AsyncIterator[BrowserSession]:
        """Hold a session for one operation: waits for its earlier work (and, for the agent, for a person
        to hand back control); turns Playwright errors, crashes included, into :class:`BrowserError`s."""
        if for_agent:
            await self.live.agent_may_act(session_id)
        session = await self._session(session_id)
        if session.pending is not None and session.pending is not asyncio.current_task():
            await asyncio.gather(session.pending, return_exceptions=True)
        async with session.lock:
            session.last_used = self._clock()
            try:
                if session.crashed or session.page.is_closed():
                    await self._replace_page(session)
                    raise BrowserCrashed(_PAGE_LOST)
                yield session
            except PlaywrightError as err:
                raise await self._translate(session, err) from err
            finally:
                session.last_used = self._clock()

    @contextlib.asynccontextmanager
    async def page(self, session_id: str) -> AsyncIterator[Page]:
        """The session's current page for one operation: ``async with service.page(sid) as page: ...``."""
        async with self.use(session_id) as session:
            yield session.page

    async def _replace_page(self, session: BrowserSession) -> None:
        old, session.page = session.page, await session.context.new_page()
        self._watch(session, session.page)
        session.crashed, session.dirty, session.loaded_url = False, False, None
        self.live.page_changed(session.id)
        with contextlib.suppress(PlaywrightError):
            await old.close()

    async def _translate(self, session: BrowserSession, err: PlaywrightError) -> BrowserError:
        text = first_line(err)
        if isinstance(err, PlaywrightTimeout):
            return BrowserError(f"timed out: {text}")
        if "crash" in text.lower() or session.crashed:
            with contextlib.suppress(PlaywrightError):
                await self._replace_page(session)
            return BrowserCrashed(_PAGE_LOST)
        if "closed" in text and session.generation == self._generation:
            try:  # Is the browser still there, or is its "disconnected" event on the way?
                await asyncio.wait_for(session.context.cookies(), 5)
            except (PlaywrightError, asyncio.TimeoutError):  # noqa: UP041 - distinct on Python 3.10
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._disconnected[session.generation].wait(), 5)
            else:
                with contextlib.suppress(PlaywrightError):
                    await self._replace_page(session)
                return BrowserError(f"{text}; the tab was replaced by a blank page, navigate again")
        if session.generation != self._generation:
            self._sessions.pop(session.id, None)
            await self._ensure_browser()
            return BrowserCrashed(f"the browser {self._lost_reason} and was restarted; navigate again.")
        return BrowserError(text)

    # ---- operations (what the tools call) ---------------------------------------------------------------

    async def navigate(self, session_id: str, url: str) -> dict[str, Any]:
        """Open ``url``: ``{url, title, status, excerpt, cached, ...}``. A cached result returns at once; if the
        tab is elsewhere it is brought to ``url`` in the background, and the next operation waits for that."""
        url = self.policy.check(url)
        await self.policy.admit(url)  # its address too, before any traffic
        cached = await self._cached(session_id, ("navigate", session_id, url), url)
        if cached is not None:
            return cached
        async with self.use(session_id) as session:
            return await self._goto(session, url)

    async def _cached(self, session_id: str, key: tuple[str, ...], url: str) -> dict[str, Any] | None:
        """The cached result of loading ``url`` (a copy), or None. On a hit, a tab that has moved on from
        ``url`` is brought back to it in the background, and the session's next operation waits for that."""
        await self.live.agent_may_act(session_id)
        session = await self._session(session_id)
        cached = self.cache.get(key)
        if cached is None:
            return None
        session.last_used = self._clock()
        if session.loaded_url != url or session.dirty or session.crashed:
            session.pending = self._spawn(self._goto_later(session, url))
        return dict(cached)

    async def snapshot(self, session_id: str) -> dict[str, Any]:
        """The accessibility tree as compact YAML with ``[ref=eN]`` element references."""
        async with self.use(session_id) as s:
            tree = await s.page.aria_snapshot(mode="ai", timeout=self.config.action_timeout * 1000)
            return {"url": s.page.url, "title": await s.page.title(), "snapshot": tree}

    async def click(self, session_id: str, ref: str) -> dict[str, Any]:
        async with self.use(session_id) as s:
            before, target = s.page, await analyze.locate(s.page, ref)
            if not await analyze.opens_new_tab(target):
                await target.click()
            else:  # wait for the new tab, so this result (and the next call) is about it
                async with s.context.expect_page() as tab:
                    await target.click()
                await (await tab.value).wait_for_load_state("domcontentloaded")
            return await self._after_action(s, before)

    async def type(self, session_id: str, ref: str, text: str, submit: bool = False) -> dict[str, Any]:
        if not isinstance(text, str):
            raise BrowserError("text must be a string")
        async with self.use(session_id) as s:
            before, target = s.page, await analyze.locate(s.page, ref)
            await target.fill(text)
            if submit:
                await target.press("Enter")
            return await self._after_action(s, before)

    async def scroll(
        self, session_id: str, direction: str = "down", amount: int | None = None, ref: str | None = None
    ) -> dict[str, Any]:
        async with self.use(session_id) as s:
            s.dirty = True
            return await analyze.scroll_page(s.page, direction, amount, ref)

    async def extract(self, session_id: str, fmt: str = "markdown") -> dict[str, Any]:
        """The current page as markdown, text or links; cached while the loaded page is unchanged."""
        if fmt not in analyze.FORMATS:
            raise BrowserError(f"format must be one of {', '.join(analyze.FORMATS)}, not {fmt!r}")
        async with self.use(session_id) as s:
            key = ("extract", session_id, s.page.url, fmt)
            cached = None if s.dirty else self.cache.get(key)
            if cached is not None:
                return {**cached, "cached": True}
            result = await analyze.extract_page(s.page, fmt, self.config.max_text_chars)
            if not s.dirty and not s.no_store:
                self.cache.put(key, result)
            return {**result, "cached": False}

    async def screenshot(self, session_id: str, full_page: bool = False) -> dict[str, Any]:
        """A PNG of the viewport or the whole page: ``{url, title, png}`` (``png`` is base64)."""
        async with self.use(session_id) as s:
            png, title = await asyncio.gather(self._png(s, bool(full_page)), s.page.title())
            return {"url": s.page.url, "title": title, "png": png}

    async def analyze(self, session_id: str, url: str) -> dict[str, Any]:
        """Load ``url``; report screenshot, metadata, performance and accessibility findings (``cached``: the
        report of an earlier load within ``cache_ttl``, as for navigate)."""
        url = self.policy.check(url)
        await self.policy.admit(url)  # its address too, before any traffic
        key = ("analyze", session_id, url)
        cached = await self._cached(session_id, key, url)
        if cached is not None:
            return cached
        async with self.use(session_id) as s:
            nav = await self._goto(s, url)
            report = await analyze.analyze_page(s.page, self._png(s, False))
            result = {**report, "status": nav["status"], "loading": nav["loading"], "cached": False}
            if not s.no_store:
                self.cache.put(key, {**result, "cached": True})
            return result

    async def _png(self, session: BrowserSession, full_page: bool) -> str:
        if session.cdp is None or session.cdp[0] is not session.page:
            try:  # one CDP session per tab, for fast screenshots
                session.cdp = session.page, await session.context.new_cdp_session(session.page)
            except PlaywrightError:
                session.cdp = None
        cdp = session.cdp[1] if session.cdp else None
        return await analyze.capture_png(
            session.page, cdp, full_page=full_page, timeout=self.config.action_timeout
        )

    async def _goto(self, session: BrowserSession, url: str) -> dict[str, Any]:
        cfg = self.config
        session.blocked.clear()
        try:
            result, headers = await analyze.load_page(
                session.page,
                url,
                timeout=cfg.nav_timeout,
                load_grace=cfg.load_grace,
                excerpt_chars=cfg.excerpt_chars,
            )
        except PlaywrightError as err:
            text = first_line(err)
            if "ERR_BLOCKED_BY_CLIENT" in text and session.blocked:
                raise UrlRefused(f"the network policy refused {session.blocked[-1]}") from err
            if "ERR_TUNNEL_CONNECTION_FAILED" in text:  # the proxy refused a CONNECT, or could not connect
                raise BrowserError(
                    f"{text}: the network policy refused an address this led to (say, by a redirect), or "
                    "the host could not be reached"
                ) from err
            raise
        session.loaded_url, session.dirty, session.no_store = url, False, forbids_storing(headers)
        await self.check_landing(session)
        result["blocked"] = list(session.blocked)  # sub-resources and frames the policy refused
        if not session.no_store:
            self.cache.put(("navigate", session.id, url), {**result, "cached": True})
        return result

    async def _goto_later(self, session: BrowserSession, url: str) -> None:
        async with session.lock:
            try:
                await self._goto(session, url)
            except (PlaywrightError, BrowserError) as err:
                session.loaded_url = None
                log.debug("background navigation to %s failed: %s", url, err)

    async def _after_action(self, session: BrowserSession, before: Page) -> dict[str, Any]:
        session.dirty = True
        await self.check_landing(session)
        page = session.page
        return {"url": page.url, "title": await page.title(), "new_tab": page is not before}

    async def check_landing(self, session: BrowserSession) -> None:
        """Refuse (and blank) a page that a redirect or a click led to when the policy forbids it: by the
        URL rules, or by its address (a refused redirect hop over plain HTTP lands on the proxy's refusal)."""
        url = session.page.url
        if url == "about:blank":
            return
        if url.startswith("chrome-error:") and session.blocked:  # the route refused the navigation
            refusal = f"the network policy refused {session.blocked[-1]}"
        else:
            refusal = self.policy.refusal(url) or await self.policy.request_refusal(url)
        if refusal:
            session.loaded_url = None
            await session.page.goto("about:blank")
            raise UrlRefused(f"the browser was led to a refused URL: {refusal}")
