"""The browser process itself: killed, over its memory limit, shut down, or remote. Each test has its own service."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest

from jupyter_agent.browser.contexts import BrowserUnavailable
from jupyter_agent.browser.service import BrowserService
from jupyter_agent.tools.base import Tool, ToolContext, ToolResult
from jupyter_agent.tools.browser import browser_navigate, browser_snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def call(tool: Tool, ctx: ToolContext, **arguments: object) -> ToolResult:
    return await tool(ctx, arguments)


async def test_should_restart_a_killed_browser_and_report_it_once(make_config, pages, tmp_path: Path) -> None:
    service = BrowserService(make_config(pool_size=1))
    ctx = ToolContext(session_id="s-killed", root_dir=tmp_path, services={"browser": service})
    try:
        assert (await call(browser_navigate, ctx, url=pages.url("index.html"))).ok
        browser = service._browser
        gone = asyncio.Event()
        browser.once("disconnected", lambda _browser: gone.set())
        main_pid = (await service.browser_pids())[0]
        os.kill(main_pid, signal.SIGKILL)
        await gone.wait()

        hit = await call(browser_snapshot, ctx)
        assert not hit.ok and hit.data["code"] == "browser_crashed"
        assert "browser crashed and was restarted" in hit.text
        again = await call(browser_navigate, ctx, url=pages.url("form.html"))
        assert again.ok and again.data["title"] == "Search"
        assert service.stats["crashes"] == 1 and service.stats["launches"] == 2
    finally:
        await service.close()


async def test_should_restart_the_browser_over_its_memory_limit(make_config, pages, tmp_path: Path) -> None:
    service = BrowserService(make_config(pool_size=1, memory_limit_mb=1))
    ctx = ToolContext(session_id="s-memory", root_dir=tmp_path, services={"browser": service})
    try:
        assert (await call(browser_navigate, ctx, url=pages.url("index.html"))).ok
        assert (await service.browser_rss_mb()) > 1
        assert await service.check_memory() is True
        hit = await call(browser_snapshot, ctx)
        assert not hit.ok and "memory limit of 1 MB" in hit.text
        assert (await call(browser_navigate, ctx, url=pages.url("form.html"))).ok
        assert service.stats["restarts"] == 1
    finally:
        await service.close()


def playwright_drivers() -> set[int]:
    """Live Playwright driver processes (node ... run-driver) started by this test process."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(ppid) == os.getpid() and state != "Z" and b"run-driver" in command:
            found.add(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_should_shut_down_the_browser_and_driver_within_a_few_seconds(
    make_config, pages, tmp_path: Path
) -> None:
    drivers_before = playwright_drivers()
    service = BrowserService(make_config(pool_size=2))
    ctx = ToolContext(session_id="s-close", root_dir=tmp_path, services={"browser": service})
    assert (await call(browser_navigate, ctx, url=pages.url("index.html"))).ok
    browser_pids = await service.browser_pids()
    driver = playwright_drivers() - drivers_before
    assert len(driver) == 1
    started = time.perf_counter()
    await service.close()
    assert time.perf_counter() - started < 5
    assert not [pid for pid in browser_pids if is_running(pid)]
    assert not [pid for pid in driver if is_running(pid)]
    with pytest.raises(BrowserUnavailable, match="shut down"):  # for the router: an infrastructure failure
        await call(browser_snapshot, ctx)


async def test_should_drive_a_remote_browser_over_cdp(make_config, pages, tmp_path: Path) -> None:
    config = make_config()
    chromium = await asyncio.create_subprocess_exec(
        config.executable_path,
        "--headless",
        "--remote-debugging-port=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        *config.launch_args,
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium's sandbox does not run as root
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    service = BrowserService(make_config(executable_path=None))
    drain = None
    try:
        match = None
        while match is None:  # Chromium says "DevTools listening on ws://..." once it accepts connections
            line = await chromium.stderr.readline()
            assert line, "Chromium exited before opening its debugging port"
            match = re.search(rb"DevTools listening on (ws://\S+)", line)
        drain = asyncio.ensure_future(chromium.stderr.read())  # keep its stderr pipe from filling up
        service.config.endpoint = match.group(1).decode()
        ctx = ToolContext(session_id="s-remote", root_dir=tmp_path, services={"browser": service})
        result = await call(browser_navigate, ctx, url=pages.url("index.html"))
        assert result.ok and result.data["title"] == "Garden Notes"
    finally:
        await service.close()
        chromium.kill()
        await chromium.wait()
        if drain is not None:
            await drain


async def test_should_raise_browser_unavailable_when_chromium_cannot_start(
    make_config, pages, tmp_path
) -> None:
    service = BrowserService(make_config(executable_path=str(tmp_path / "no-such-chromium")))
    ctx = ToolContext(session_id="s-nochrome", root_dir=tmp_path, services={"browser": service})
    try:  # not a readable tool result: the router counts it against the tool and tries its fallbacks
        with pytest.raises(BrowserUnavailable, match="could not start the browser"):
            await call(browser_navigate, ctx, url=pages.url("index.html"))
    finally:
        await service.close()
