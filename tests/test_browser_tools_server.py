"""The browser tools through the agent server: a page the tests serve, read by the model's tool calls."""

from __future__ import annotations

import os

import pytest

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import serve_page

PAGE = b"""<!doctype html><html lang="en"><head><title>Sales dashboard</title></head>
<body><h1>Revenue</h1><p>Revenue grew 12% in March.</p></body></html>"""


@pytest.fixture
def site():
    with serve_page(PAGE) as url:
        yield url


@pytest.fixture
def agent_config(agent_config, site):
    """The test server's settings, allowing its browser to reach the page server (loopback is refused)."""
    return {**agent_config, "allowed_networks": [site.removeprefix("http://")]}


async def test_agent_browses_a_page_and_sees_a_screenshot(agent, agent_app, llm, site):
    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": f"{site}/dashboard"})]),
        Reply(tool_calls=[ToolCallSpec("browser_screenshot", {})]),
        Reply(tool_calls=[ToolCallSpec("web_fetch", {"url": f"{site}/dashboard", "format": "text"})]),
        Reply(text="Revenue grew 12% in March."),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("what does the dashboard say?", timeout=90)
    assert frames[-1]["type"] == "done", frames[-1]
    navigate, screenshot, fetched = [f for f in frames if f["type"] == "tool_result"]
    assert navigate["ok"] and navigate["data"]["title"] == "Sales dashboard"
    assert "untrusted" in navigate["content"] and "Revenue grew 12%" in navigate["content"]
    assert screenshot["ok"] and screenshot["images"][0]["mime"] == "image/png"
    assert fetched["ok"] and "Revenue grew 12% in March." in fetched["content"]
    _, tools = await agent.request("GET", "tools")
    names = {t["name"]: t for t in tools["tools"]}
    assert names["browser_navigate"]["fallbacks"] == ["web_fetch"]


async def test_browser_refuses_the_servers_own_address_in_any_form(agent, llm, jp_http_port, jp_base_url):
    path = f"{jp_base_url}api/agent/sessions"
    urls = [
        f"http://127.0.0.1:{jp_http_port}{path}",
        f"http://localhost.:{jp_http_port}{path}",
        f"http://2130706433:{jp_http_port}{path}",
        f"http://[::ffff:127.0.0.1]:{jp_http_port}{path}",
    ]
    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": url}) for url in urls]),
        Reply(tool_calls=[ToolCallSpec("web_fetch", {"url": url}) for url in urls]),
        Reply(text="refused"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("read the sessions", timeout=60)
    results = [f for f in frames if f["type"] == "tool_result"]
    assert len(results) == 2 * len(urls)
    for result in results:
        assert not result["ok"], result["content"]
        assert "loopback" in result["content"] or "the Jupyter server's own" in result["content"]


async def test_health_says_whether_the_browser_runs_in_its_sandbox(agent):
    _, health = await agent.request("GET", "health", expect=200)
    browser = health["browser"]
    assert set(browser) >= {"running", "sandbox", "sandbox_reason", "address_pinning"}
    if os.geteuid() == 0:  # Chromium's sandbox does not run as root
        assert browser["sandbox"] is False and "running as root" in browser["sandbox_reason"]
    else:
        assert browser["sandbox"] is True or browser["sandbox_reason"]
