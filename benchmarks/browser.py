"""Browser tool latency: the warm shared service against launching a browser for every operation.

Starts a local page server and prints p50/p90 (ms) of:
- warm: browser_navigate + browser_screenshot of a new URL each time (query string), one warm session;
- cached: browser_navigate of the same URL again (served from the result cache);
- analyze: browser_analyze of a new URL each time;
- naive: launch Chromium + new page + goto + screenshot + close, per operation (Playwright already up);
and the speedup of warm over naive. Aims: warm <= 300 ms, cached <= 20 ms, >= 5x faster than naive.

    python benchmarks/browser.py --n 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright

from jupyter_agent.browser import BrowserConfig
from jupyter_agent.browser.service import BrowserService
from jupyter_agent.tools.base import ToolContext, ToolResult
from jupyter_agent.tools.browser import browser_analyze, browser_navigate, browser_screenshot

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bench {i}</title>
<meta name="description" content="A benchmark page"><meta property="og:title" content="Bench">
<style>body {{ font: 16px sans-serif; margin: 2em }} .card {{ border: 1px solid #ccc; padding: 1em }}</style>
</head><body><h1>Benchmark page {i}</h1>{cards}<img src="/pixel.svg" width="40" height="40">
<form><label>Search <input name="q"></label><button>Go</button></form></body></html>"""
CARD = '<div class="card"><h2>Item {n}</h2><p>Some text about item {n}, with <a href="/p?i={n}">a link</a>.</p></div>'
PIXEL = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40"/></svg>'


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/pixel.svg"):
            body, mime = PIXEL, "image/svg+xml"
        else:
            i = self.path.rpartition("=")[2]
            cards = "".join(CARD.format(n=n) for n in range(12))
            body, mime = PAGE.format(i=i, cards=cards).encode(), "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # a browser closed mid-load (the naive runs)
            self.wfile.write(body)


def pct(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(p) - 1]


async def timed(n: int, op: Callable[[int], Awaitable[object]], warmup: int = 1) -> list[float]:
    """Milliseconds of ``n`` runs of ``op(i)``, after ``warmup`` untimed runs."""
    for i in range(warmup):
        await op(-1 - i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def check(result: ToolResult) -> ToolResult:
    if not result.ok:
        raise RuntimeError(result.text)
    return result


async def main(n: int, naive_n: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    service = BrowserService(BrowserConfig(allowed_networks=[base.removeprefix("http://")]))  # loopback
    ctx = ToolContext(session_id="bench", root_dir=Path(tempfile.gettempdir()), services={"browser": service})
    try:
        started = time.perf_counter()
        await service.start()
        start_ms = (time.perf_counter() - started) * 1000

        async def warm(i: int) -> None:
            check(await browser_navigate(ctx, {"url": f"{base}/p?i=warm{i}"}))
            check(await browser_screenshot(ctx, {}))

        async def cached(i: int) -> None:  # the untimed warm-up run (i < 0) fills the cache
            result = check(await browser_navigate(ctx, {"url": f"{base}/p?i=same"}))
            if i >= 0 and not result.data["cached"]:
                raise RuntimeError("a repeated navigate missed the cache")

        async def analyze(i: int) -> None:
            check(await browser_analyze(ctx, {"url": f"{base}/p?i=analyze{i}"}))

        results = {
            "warm navigate + screenshot": (await timed(n, warm, warmup=2), 300),
            "cached repeat navigate": (await timed(n, cached), 20),
            "browser_analyze": (await timed(n, analyze), None),
        }
    finally:
        close_started = time.perf_counter()
        await service.close()
        close_ms = (time.perf_counter() - close_started) * 1000

    config = BrowserConfig()
    async with async_playwright() as p:

        async def naive(i: int) -> None:
            browser = await p.chromium.launch(executable_path=config.executable_path, args=config.launch_args)
            page = await browser.new_page()
            await page.goto(f"{base}/p?i=naive{i}")
            await page.screenshot(type="png")
            await browser.close()

        results["naive: launch per operation"] = (await timed(naive_n, naive), None)
    server.shutdown()

    print(
        f"\nBrowser benchmark (n={n}, naive n={naive_n}); service start {start_ms:.0f} ms, close {close_ms:.0f} ms"
    )
    print(f"{'operation':<30} {'p50 ms':>8} {'p90 ms':>8}  aim")
    for name, (samples, aim) in results.items():
        p50, p90 = statistics.median(samples), pct(samples, 90)
        verdict = "" if aim is None else f"<= {aim} ms: {'met' if p50 <= aim else 'MISSED'}"
        print(f"{name:<30} {p50:8.2f} {p90:8.2f}  {verdict}")
    speedup = statistics.median(results["naive: launch per operation"][0]) / statistics.median(
        results["warm navigate + screenshot"][0]
    )
    print(f"speedup warm vs naive (p50): {speedup:.1f}x (aim >= 5x: {'met' if speedup >= 5 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20, help="timed runs per operation")
    parser.add_argument(
        "--naive-n", type=int, default=None, help="timed runs of the naive baseline (default: n)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, args.naive_n or args.n))
