"""Fixtures for the browser tests: a local page server, one shared browser service, per-test contexts.

The page server serves ``pages/`` on 127.0.0.1 plus a few dynamic routes: ``/hang/...`` never answers
(until the server stops), ``/set-cookie`` and ``/cookies`` set and echo a cookie, ``/redirect?to=`` sends a
302, ``/api/...`` stands in for the Jupyter server's API, ``no-store.html`` says Cache-Control: no-store, and
``/embed?src=`` is a page that loads ``src`` as an image, a frame and a ``fetch`` and shows what happened
(``/socket?src=`` opens a WebSocket to ``src``).
:func:`refused_site` is a second loopback server that the browser's network policy refuses; it records every
request that reaches it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio

from jupyter_agent.tools.base import ToolContext

playwright = pytest.importorskip("playwright.async_api")

from jupyter_agent.browser import BrowserConfig  # noqa: E402
from jupyter_agent.browser.service import BrowserService  # noqa: E402

PAGES = Path(__file__).parent / "pages"
EXTRA_HEADERS = {"/no-store.html": {"Cache-Control": "no-store"}}
EMBED = """<!doctype html><html><head><title>Embed</title></head><body>
<img id="img" alt="probe" src="{src}"><iframe id="frame" title="probe" src="{src}"></iframe>
<p id="result">pending</p>
<script>
const img = document.getElementById("img");
const image = img.complete
  ? Promise.resolve(img.naturalWidth ? "loaded" : "failed")
  : new Promise(done => {{ img.onload = () => done("loaded"); img.onerror = () => done("failed"); }});
const fetched = fetch({src_js}, {{mode: "no-cors"}}).then(() => "reached", () => "failed");
Promise.all([image, fetched]).then(([i, f]) => {{
  document.getElementById("result").textContent = `image ${{i}}; fetch ${{f}}`;
}});
</script></body></html>"""
SOCKET = """<!doctype html><html><head><title>Socket</title></head><body><p id="result">pending</p><script>
const show = text => {{ document.getElementById("result").textContent = text; }};
const socket = new WebSocket({src_js});
socket.onopen = () => show("open");
socket.onerror = () => show("failed");
</script></body></html>"""


class _PageHandler(SimpleHTTPRequestHandler):
    release: threading.Event  # set when the server stops, so hanging requests end

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def end_headers(self) -> None:
        for name, value in EXTRA_HEADERS.get(urlsplit(self.path).path, {}).items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path.startswith("/hang/"):
            self.release.wait(60)
            with contextlib.suppress(OSError):  # the browser has usually given up by now
                self._reply(503, "text/plain", "gave up")
        elif url.path == "/set-cookie":
            value = query.get("v", ["x"])[0]
            self._reply(
                200, "text/html", f"<title>Cookie</title><p>set {value}</p>", f"token={value}; Path=/"
            )
        elif url.path == "/cookies":
            cookie = self.headers.get("Cookie") or "none"
            self._reply(200, "text/html", f"<title>Cookies</title><p>cookies: {cookie}</p>")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/embed":
            src = query["src"][0]
            self._reply(200, "text/html", EMBED.format(src=html.escape(src), src_js=json.dumps(src)))
        elif url.path == "/socket":
            self._reply(200, "text/html", SOCKET.format(src_js=json.dumps(query["src"][0])))
        elif url.path.startswith("/api/"):
            self._reply(200, "application/json", '{"content": "a file the browser must not read"}')
        else:
            super().do_GET()

    def _reply(self, status: int, mime: str, body: str, cookie: str | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{mime}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)


@dataclass
class PageServer:
    base: str

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    @property
    def netloc(self) -> str:
        """``127.0.0.1:<port>``: what an ``allowed_networks`` entry naming this server says."""
        return self.base.removeprefix("http://")


@pytest.fixture(scope="session")
def pages() -> Iterator[PageServer]:
    release = threading.Event()
    handler = type("Handler", (_PageHandler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(PAGES)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-page-server", daemon=True)
    thread.start()
    try:
        yield PageServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class RefusedSite:
    """A loopback server on a port the browser's policy does not allow; ``hits`` are the paths it served."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits, pixel = self.hits, (PAGES / "pixel.png").read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(pixel)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(pixel)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


@pytest.fixture
def refused_site() -> Iterator[RefusedSite]:
    site = RefusedSite()
    thread = threading.Thread(target=site.server.serve_forever, name="test-refused-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(5)


class ManualClock:
    """Monotonic time that tests can move forward (and back) without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()


def _config(pages: PageServer, **overrides: object) -> BrowserConfig:
    config = BrowserConfig(
        server_url=f"{pages.base}/",  # the page server also stands in for the Jupyter server's API
        allowed_networks=[pages.netloc],  # loopback is refused unless allowed, the server's own by name
        deny=["*/private/*", r"re:secret-\d+"],
        load_grace=1.0,
        nav_timeout=10.0,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def service(pages: PageServer, clock: ManualClock) -> AsyncIterator[BrowserService]:
    browser = BrowserService(_config(pages), clock=clock)
    await browser.start()
    try:
        yield browser
    finally:
        await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def ctx(
    service: BrowserService, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ToolContext]:
    """A tool context with its own chat session (so its own browser context), closed after the test."""
    context = ToolContext(
        session_id=f"s-{request.node.name}", root_dir=tmp_path, services={"browser": service}
    )
    yield context
    await service.close_session(context.session_id)


@pytest.fixture
def make_config(pages: PageServer):  # type: ignore[no-untyped-def]
    """Build a config for a dedicated service (tests that crash or restart the browser)."""
    return functools.partial(_config, pages)
