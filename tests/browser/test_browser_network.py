"""The network policy on real traffic, against loopback servers only: the page server is allowed by its
``127.0.0.1:<port>`` entry, ``refused_site`` (another port of 127.0.0.1) is not. Each test shows what the
model or the page observes and that the refused server was never reached."""

from __future__ import annotations

import os

import pytest

from jupyter_agent.browser.policy import UrlPolicy
from jupyter_agent.browser.service import BrowserService
from jupyter_agent.tools.base import Tool, ToolContext, ToolResult
from jupyter_agent.tools.browser import browser_navigate, http_extract, web_fetch

pytestmark = pytest.mark.asyncio(loop_scope="session")

# How a URL may spell the refused loopback server (the port is filled in).
LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://127.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::1]:{port}/",
    "http://localhost:{port}/",
    "http://localhost.:{port}/",
    "http://LocalHost:{port}/",
    "http://0.0.0.0:{port}/",
]


async def call(tool: Tool, ctx: ToolContext, **arguments: object) -> ToolResult:
    return await tool(ctx, arguments)


async def embed_result(service: BrowserService, session_id: str) -> str:
    """What the ``/embed`` (or ``/socket``) page says once what it loads has settled."""
    async with service.page(session_id) as page:
        result = page.locator("#result")
        await page.wait_for_function("document.getElementById('result').textContent !== 'pending'")
        return await result.text_content()


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
async def test_should_refuse_every_spelling_of_a_loopback_service_in_browser_and_web_fetch(
    ctx, refused_site, form: str
) -> None:
    url = form.format(port=refused_site.port)
    navigated = await call(browser_navigate, ctx, url=url)
    assert not navigated.ok and navigated.data["code"] == "url_refused", navigated.text
    assert "loopback" in navigated.text or "unspecified" in navigated.text
    fetched = await call(web_fetch, ctx, url=url)
    assert not fetched.ok and fetched.data["code"] == "url_refused", fetched.text
    assert refused_site.hits == []


async def test_should_reach_a_loopback_service_only_through_an_entry_with_its_port(
    pages, refused_site
) -> None:
    allowed = UrlPolicy(allowed_networks=[f"127.0.0.1:{refused_site.port}"])
    for form in ("http://127.0.0.1:{port}/a", "http://2130706433:{port}/b", "http://0x7f.1:{port}/c"):
        result = await http_extract(form.format(port=refused_site.port), policy=allowed)
        assert not result.ok and "not a text document" in result.text  # reached: it serves a PNG
    assert refused_site.hits == ["/a", "/b", "/c"]
    other_port = await http_extract(pages.url("index.html"), policy=allowed)
    assert not other_port.ok and "loopback" in other_port.text
    everywhere = UrlPolicy(allowed_networks=["127.0.0.1"])
    assert (await http_extract(pages.url("index.html"), policy=everywhere)).ok


async def test_should_refuse_a_redirect_to_a_refused_address_in_the_browser(ctx, pages, refused_site) -> None:
    for target in (refused_site.url("secret"), f"http://2130706433:{refused_site.port}/secret"):
        result = await call(browser_navigate, ctx, url=pages.url(f"redirect?to={target}"))
        assert not result.ok and result.data["code"] == "url_refused", result.text
        assert "loopback" in result.text
    async with ctx.services["browser"].page(ctx.session_id) as page:
        assert page.url == "about:blank"
    assert refused_site.hits == []
    followed = await call(browser_navigate, ctx, url=pages.url("redirect?to=/index.html"))
    assert followed.ok and followed.data["url"] == pages.url("index.html")


async def test_should_follow_only_allowed_redirects_in_web_fetch(ctx, pages, refused_site) -> None:
    followed = await call(web_fetch, ctx, url=pages.url("redirect?to=/index.html"))
    assert followed.ok and followed.data["url"] == pages.url("index.html")
    for target in (refused_site.url("secret"), f"http://[::ffff:127.0.0.1]:{refused_site.port}/x"):
        refused = await call(web_fetch, ctx, url=pages.url(f"redirect?to={target}"))
        assert not refused.ok and refused.data["code"] == "url_refused" and "loopback" in refused.text
    assert refused_site.hits == []


async def test_should_block_sub_resources_and_frames_at_a_refused_address(
    ctx, service, pages, refused_site
) -> None:
    pixel = refused_site.url("pixel.png")
    result = await call(browser_navigate, ctx, url=pages.url(f"embed?src={pixel}"))
    assert result.ok, result.text
    assert "The network policy blocked" in result.text and pixel in result.text
    assert any(entry.startswith(pixel) for entry in result.data["blocked"])
    assert await embed_result(service, ctx.session_id) == "image failed; fetch failed"
    assert refused_site.hits == []


async def test_should_block_a_sub_resource_redirected_to_a_refused_address(
    ctx, service, pages, refused_site
) -> None:
    hop = pages.url(f"redirect?to={refused_site.url('pixel.png')}")
    result = await call(browser_navigate, ctx, url=pages.url(f"embed?src={hop}"))
    assert result.ok, result.text
    assert (await embed_result(service, ctx.session_id)).startswith("image failed")
    assert refused_site.hits == []


async def test_should_refuse_a_websocket_to_a_refused_address(ctx, service, pages, refused_site) -> None:
    # Playwright's route never sees WebSockets: the proxy refuses their tunnel.
    socket = f"ws://127.0.0.1:{refused_site.port}/socket"
    assert (await call(browser_navigate, ctx, url=pages.url(f"socket?src={socket}"))).ok
    assert await embed_result(service, ctx.session_id) == "failed"
    assert refused_site.hits == []


async def test_should_load_sub_resources_from_a_loopback_service_its_entry_allows(
    make_config, pages, refused_site, tmp_path
) -> None:
    config = make_config(allowed_networks=[pages.netloc, f"127.0.0.1:{refused_site.port}"])
    service = BrowserService(config)
    ctx = ToolContext(session_id="s-allowed-embed", root_dir=tmp_path, services={"browser": service})
    try:
        hop = pages.url(f"redirect?to={refused_site.url('via-redirect.png')}")
        for src in (refused_site.url("direct.png"), hop):
            result = await call(browser_navigate, ctx, url=pages.url(f"embed?src={src}"))
            assert result.ok and result.data["blocked"] == [], result.text
            assert await embed_result(service, ctx.session_id) == "image loaded; fetch reached"
        socket = f"ws://127.0.0.1:{refused_site.port}/socket"
        assert (await call(browser_navigate, ctx, url=pages.url(f"socket?src={socket}"))).ok
        await embed_result(service, ctx.session_id)  # "failed" too: the site speaks no WebSocket
    finally:
        await service.close()
    assert {"/direct.png", "/via-redirect.png", "/socket"} <= set(refused_site.hits)


async def test_should_refuse_the_server_address_unless_named_and_its_api_even_then(ctx, pages) -> None:
    # The page server stands in for the Jupyter server, and the fixture's entry names it with its port.
    assert (await call(browser_navigate, ctx, url=pages.url("index.html"))).ok
    port = pages.netloc.rsplit(":", 1)[1]
    for url in (pages.url("api/contents"), f"http://2130706433:{port}/%61pi/contents"):
        refused = await call(browser_navigate, ctx, url=url)
        assert not refused.ok and "server_api" in refused.text
        assert "server_api" in (await call(web_fetch, ctx, url=url)).text
    # A network entry covering it does not name it: the server stays out of reach.
    policy = UrlPolicy(server_url=f"{pages.base}/", allowed_networks=["127.0.0.0/8"])
    unnamed = await http_extract(pages.url("index.html"), policy=policy)
    assert not unnamed.ok and "the Jupyter server's own address" in unnamed.text


async def test_should_report_whether_chromium_runs_in_its_sandbox(service) -> None:
    health = service.health()
    assert health["running"] and health["address_pinning"]
    if os.geteuid() == 0:
        assert health["sandbox"] is False and "running as root" in health["sandbox_reason"]
    else:
        assert health["sandbox"] is True or health["sandbox_reason"]
