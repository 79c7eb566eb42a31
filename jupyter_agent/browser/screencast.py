"""Frames of a browser page for the live view: JPEG pictures with the page's URL, title and size.

:class:`Screencast` uses CDP's ``Page.startScreencast``, so Chromium sends a frame when the page repaints;
:class:`Screenshots` is the fallback where there is no CDP (say, a remote Playwright server): a screenshot
every so often, sent when it changed. Both tell their owner when the page goes away. Which page is streamed,
and to whom, is :class:`~jupyter_agent.browser.live.LiveBrowser`'s part.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from playwright.async_api import CDPSession, Page
from playwright.async_api import Error as PlaywrightError

from jupyter_agent.browser.policy import first_line

log = logging.getLogger(__name__)

SCREENCAST = {"format": "jpeg", "quality": 60, "maxWidth": 1280, "maxHeight": 800}


class FrameStream:
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
        self._title = await page_title(self.page, self._title)
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


class Screencast(FrameStream):
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


class Screenshots(FrameStream):
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
                log.debug("live view screenshot failed: %s", first_line(err))
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


async def page_title(page: Page, fallback: str = "") -> str:
    """The page's title; ``fallback`` while it is navigating (its document is not there to ask)."""
    try:
        return await asyncio.wait_for(page.title(), 2)
    except (PlaywrightError, TimeoutError):
        return fallback
