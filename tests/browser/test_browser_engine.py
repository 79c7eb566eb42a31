"""The engine under the tools: context pool, session isolation, the result cache, crashes, housekeeping."""

from __future__ import annotations

import asyncio
import time

import pytest

from jupyter_agent.browser.contexts import BrowserCrashed
from jupyter_agent.tools.base import Tool, ToolContext, ToolResult
from jupyter_agent.tools.browser import (
    browser_analyze,
    browser_extract,
    browser_navigate,
    browser_snapshot,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def call(tool: Tool, ctx: ToolContext, **arguments: object) -> ToolResult:
    return await tool(ctx, arguments)


def other(ctx: ToolContext, suffix: str) -> ToolContext:
    return ToolContext(session_id=f"{ctx.session_id}-{suffix}", root_dir=ctx.root_dir, services=ctx.services)


async def test_should_give_a_new_session_a_prewarmed_context_from_the_pool(ctx, pages, service) -> None:
    await service.start()
    ready = service.pooled_contexts()
    assert len(ready) == service.config.pool_size
    hits = service.stats["pool_hits"]
    result = await call(browser_navigate, ctx, url=pages.url("index.html"))
    assert result.ok
    assert any(service.session_context(ctx.session_id) is context for context in ready)
    assert service.stats["pool_hits"] == hits + 1
    await service.start()  # the pool refills in the background
    assert len(service.pooled_contexts()) == service.config.pool_size


async def test_should_not_leak_cookies_between_sessions(ctx, pages, service) -> None:
    second = other(ctx, "b")
    try:
        assert (await call(browser_navigate, ctx, url=pages.url("set-cookie?v=alpha"))).ok
        mine = await call(browser_navigate, ctx, url=pages.url("cookies"))
        theirs = await call(browser_navigate, second, url=pages.url("cookies"))
        assert "cookies: token=alpha" in mine.text
        assert "cookies: none" in theirs.text
        assert service.session_context(ctx.session_id) is not service.session_context(second.session_id)
    finally:
        await service.close_session(second.session_id)


async def test_should_serve_a_repeated_navigate_and_extract_from_the_cache(ctx, pages, service) -> None:
    url = pages.url("index.html?cache=1")
    first = await call(browser_navigate, ctx, url=url)
    assert first.ok and first.data["cached"] is False
    started = time.perf_counter()
    again = await call(browser_navigate, ctx, url=url)
    elapsed = time.perf_counter() - started
    assert again.data["cached"] is True and "from cache" in again.text
    assert elapsed < 0.02
    assert again.data["title"] == first.data["title"]
    assert (await call(browser_extract, ctx)).data["cached"] is False
    assert (await call(browser_extract, ctx)).data["cached"] is True


async def test_should_not_cache_no_store_responses(ctx, pages) -> None:
    url = pages.url("no-store.html")
    assert (await call(browser_navigate, ctx, url=url)).data["cached"] is False
    assert (await call(browser_navigate, ctx, url=url)).data["cached"] is False
    assert (await call(browser_extract, ctx)).data["cached"] is False
    assert (await call(browser_extract, ctx)).data["cached"] is False


async def test_should_expire_cached_results_after_the_ttl(ctx, pages, service, clock) -> None:
    url = pages.url("index.html?ttl=1")
    await call(browser_navigate, ctx, url=url)
    assert (await call(browser_navigate, ctx, url=url)).data["cached"] is True
    clock.advance(service.config.cache_ttl + 1)
    try:
        assert (await call(browser_navigate, ctx, url=url)).data["cached"] is False
    finally:
        clock.advance(-(service.config.cache_ttl + 1))


async def test_should_bring_the_page_back_when_a_cached_url_is_elsewhere(ctx, pages) -> None:
    await call(browser_navigate, ctx, url=pages.url("index.html?back=1"))
    await call(browser_navigate, ctx, url=pages.url("form.html"))
    cached = await call(browser_navigate, ctx, url=pages.url("index.html?back=1"))
    assert cached.data["cached"] is True
    snap = await call(browser_snapshot, ctx)  # waits for the background navigation
    assert snap.data["url"] == pages.url("index.html?back=1")
    assert 'heading "Garden Notes"' in snap.text


async def test_should_serve_a_repeated_analysis_from_the_cache_until_the_ttl(
    ctx, pages, service, clock
) -> None:
    url = pages.url("index.html?analyze=1")
    first = await call(browser_analyze, ctx, url=url)
    assert first.ok and first.data["cached"] is False, first.text
    again = await call(browser_analyze, ctx, url=url)
    assert again.data["cached"] is True and "from an analysis in the last" in again.text
    assert again.data["metadata"] == first.data["metadata"]
    assert again.data["accessibility"] == first.data["accessibility"]
    assert again.images[0].data == first.images[0].data
    clock.advance(service.config.cache_ttl + 1)
    try:
        assert (await call(browser_analyze, ctx, url=url)).data["cached"] is False
    finally:
        clock.advance(-(service.config.cache_ttl + 1))


async def test_should_analyse_a_no_store_page_afresh_each_time(ctx, pages) -> None:
    url = pages.url("no-store.html")
    assert (await call(browser_analyze, ctx, url=url)).data["cached"] is False
    assert (await call(browser_analyze, ctx, url=url)).data["cached"] is False


async def test_should_bring_the_page_back_when_a_cached_analysis_is_elsewhere(ctx, pages) -> None:
    await call(browser_analyze, ctx, url=pages.url("index.html?analyze=back"))
    await call(browser_navigate, ctx, url=pages.url("form.html"))
    cached = await call(browser_analyze, ctx, url=pages.url("index.html?analyze=back"))
    assert cached.data["cached"] is True
    snap = await call(browser_snapshot, ctx)  # waits for the background navigation
    assert snap.data["url"] == pages.url("index.html?analyze=back")


async def test_should_not_serve_a_page_changed_by_actions_from_the_extract_cache(ctx, pages, service) -> None:
    await call(browser_navigate, ctx, url=pages.url("long.html"))
    assert (await call(browser_extract, ctx, format="text")).data["cached"] is False
    async with service.page(ctx.session_id) as page:
        await page.get_by_role("button", name="Bottom button").click()
    await service.scroll(ctx.session_id, "down")  # marks the page as changed
    changed = await call(browser_extract, ctx, format="text")
    assert changed.data["cached"] is False and "Bottom clicked" in changed.text


async def test_should_report_a_crashed_page_once_and_then_work(ctx, pages, service) -> None:
    await call(browser_navigate, ctx, url=pages.url("index.html"))
    async with service.page(ctx.session_id) as page:
        crashed = asyncio.Event()
        page.once("crash", lambda _page: crashed.set())
        cdp = await page.context.new_cdp_session(page)
        crash = asyncio.ensure_future(cdp.send("Page.crash"))  # never answers: the renderer is gone
        await crashed.wait()
        crash.cancel()
    hit = await call(browser_snapshot, ctx)
    assert not hit.ok and "crashed" in hit.text and hit.data["code"] == "browser_crashed"
    again = await call(browser_navigate, ctx, url=pages.url("form.html"))
    assert again.ok and again.data["title"] == "Search"


async def test_should_turn_a_crash_during_an_operation_into_a_clear_error(ctx, pages, service) -> None:
    await call(browser_navigate, ctx, url=pages.url("index.html"))
    with pytest.raises(BrowserCrashed, match="crashed"):
        async with service.page(ctx.session_id) as page:
            cdp = await page.context.new_cdp_session(page)
            crash = asyncio.ensure_future(cdp.send("Page.crash"))
            try:
                await page.evaluate("new Promise(() => {})")  # pending until the renderer dies
            finally:
                crash.cancel()
    assert (await call(browser_navigate, ctx, url=pages.url("form.html"))).ok


async def test_should_close_idle_sessions(ctx, pages, service, clock) -> None:
    await call(browser_navigate, ctx, url=pages.url("index.html"))
    context = service.session_context(ctx.session_id)
    assert ctx.session_id not in await service.reap_idle()
    clock.advance(service.config.idle_timeout + 1)
    try:
        assert ctx.session_id in await service.reap_idle()
    finally:
        clock.advance(-(service.config.idle_timeout + 1))
    assert service.session_context(ctx.session_id) is None
    assert context.pages == []
    fresh = await call(browser_navigate, ctx, url=pages.url("form.html"))
    assert fresh.ok and service.session_context(ctx.session_id) is not context


async def test_should_keep_at_most_max_pages_per_session(ctx, pages, service) -> None:
    await call(browser_navigate, ctx, url=pages.url("index.html"))
    limit = service.config.max_pages_per_session
    async with service.page(ctx.session_id) as first:
        context = first.context
        for _ in range(limit):
            async with context.expect_page():
                await first.evaluate("window.open('/form.html')")
    if not first.is_closed():
        await first.wait_for_event("close")
    assert len(context.pages) == limit
    snap = await call(browser_snapshot, ctx)
    assert snap.ok and snap.data["url"].endswith("/form.html")
