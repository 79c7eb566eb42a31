"""The browser panel's server side: watching the session's page live, and a person taking over."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import AgentClient, AgentSocket, serve_page

PAGE = b"""<!doctype html><html lang="en"><head><title>Live page</title></head><body>
<h1>Counter</h1>
<button id="go" style="position:absolute; left:120px; top:160px; width:220px; height:70px"
  onclick="this.textContent = 'Clicked by a person'">Click me</button>
<input id="name" aria-label="Name" style="position:absolute; left:120px; top:300px">
<a id="tab" href="/opened-in-a-tab" target="_blank" style="position:absolute; left:120px; top:400px">Open a tab</a>
</body></html>"""


@pytest.fixture
def site():
    with serve_page(PAGE) as url:
        yield url


@pytest.fixture
def agent_config(agent_config, site):
    """The test server's settings, allowing its browser to reach the page server (loopback is refused)."""
    return {**agent_config, "allowed_networks": [site.removeprefix("http://")]}


async def watch(agent: AgentClient, session_id: str) -> AgentSocket:
    """The browser panel's socket; returns once its first state frame arrived."""
    url = f"ws://127.0.0.1:{agent.port}{agent.base_url}api/agent/sessions/{session_id}/browser/ws"
    sock = AgentSocket(await websocket_connect(HTTPRequest(url, headers=agent.auth_header)))
    agent._sockets.append(sock)
    first = await sock.next()
    assert first["type"] == "state", first
    return sock


async def settled(sock: AgentSocket) -> None:
    """Frames are handled in order: once a ping is answered, every frame sent before it was handled."""
    await sock.send(type="ping", id="sync")
    await sock.until(lambda f: f["type"] == "pong")


def is_state(**fields: Any):
    return lambda f: f["type"] == "state" and all(f.get(k) == v for k, v in fields.items())


async def page_text(agent_app, session_id: str, selector: str) -> str:
    async with agent_app.browser.use(session_id, for_agent=False) as session:
        return await session.page.locator(selector).text_content()


async def test_should_stream_the_agents_page_and_let_a_person_take_over(agent, agent_app, llm, site):
    sid = await agent.new_session()
    chat = await agent.connect(sid)
    panel = await watch(agent, sid)
    _, before = await agent.request("GET", "sessions", sid, "browser", expect=200)
    assert before == {"active": False, "url": "", "title": "", "controlled_by": None, "agent_waiting": False}
    assert agent_app.browser.current_page(sid) is None, "watching alone does not open a browser"

    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": f"{site}/live"})]), Reply(text="ok")
    )
    assert (await chat.turn("open the page", timeout=90))[-1]["type"] == "done"
    frame = (await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/live"))[-1]
    assert base64.b64decode(frame["data"])[:2] == b"\xff\xd8", "a JPEG"
    assert (frame["width"], frame["height"]) == (1280, 800) and frame["seq"] >= 1
    _, state = await agent.request("GET", "sessions", sid, "browser", expect=200)
    assert state["active"] and state["url"] == f"{site}/live" and state["title"] == "Live page"

    async with agent_app.browser.page(sid) as page:
        box = await page.locator("#go").bounding_box()
    await panel.send(type="control", take=True)
    taken = (await panel.until(is_state(in_control=True)))[-1]
    assert taken["controlled_by"]["username"]
    await panel.send(
        type="input", action="click", x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2
    )
    await settled(panel)
    assert await page_text(agent_app, sid, "#go") == "Clicked by a person"

    # While the person has control, the agent's browser call waits for them to hand it back.
    llm.script(Reply(tool_calls=[ToolCallSpec("browser_extract", {"format": "text"})]), Reply(text="read"))
    await chat.send(type="prompt", text="read the page")
    await panel.until(is_state(agent_waiting=True))
    _, log = await agent.request("GET", "sessions", sid, "events")
    assert [e["name"] for e in log["events"] if e["type"] == "tool_result"] == ["browser_navigate"]
    await panel.send(type="control", take=False)
    await panel.until(is_state(in_control=False, controlled_by=None))
    frames = await chat.until_type("done", "error", timeout=90)
    extracted = next(f for f in frames if f["type"] == "tool_result")
    assert extracted["ok"] and "Clicked by a person" in extracted["content"]


async def test_should_type_keys_and_navigate_only_while_in_control(agent, agent_app, site):
    sid = await agent.new_session()
    panel = await watch(agent, sid)

    await panel.send(type="input", action="navigate", url=f"{site}/first")
    refused = await panel.next()
    assert refused["type"] == "error" and refused["code"] == "not_in_control"

    await panel.send(type="control", take=True)
    await panel.until(is_state(in_control=True))
    await panel.send(type="input", action="navigate", url=f"{site}/first")
    frame = (await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/first"))[-1]
    assert frame["title"] == "Live page", "the person's navigation opened the session's browser"

    async with agent_app.browser.use(sid, for_agent=False) as session:
        box = await session.page.locator("#name").bounding_box()
    await panel.send(type="input", action="click", x=box["x"] + 5, y=box["y"] + 5)
    await panel.send(type="input", action="type", text="Ada")
    await panel.send(type="input", action="key", key="Backspace")
    await panel.send(type="input", action="scroll", dx=0, dy=200, x=10, y=10)
    await panel.send(type="input", action="navigate", url="file:///etc/passwd")
    assert (await panel.until(lambda f: f["type"] == "error"))[-1]["code"] == "url_refused"
    await panel.send(type="input", action="click", x=99_999, y=5)
    assert (await panel.until(lambda f: f["type"] == "error"))[-1]["code"] == "bad_message"
    await panel.send(type="input", action="teleport")
    assert (await panel.until(lambda f: f["type"] == "error"))[-1]["code"] == "bad_message"
    await settled(panel)
    async with agent_app.browser.use(sid, for_agent=False) as session:
        assert await session.page.locator("#name").input_value() == "Ad"

    await panel.send(type="input", action="navigate", url=f"{site}/second")
    await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/second")
    await panel.send(type="input", action="back")
    await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/first")
    await panel.send(type="input", action="forward")
    await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/second")
    await panel.send(type="input", action="reload")
    await settled(panel)
    assert agent_app.browser.current_page(sid).url == f"{site}/second"


async def test_should_tell_the_agent_to_try_later_when_control_is_not_handed_back(
    agent, agent_app, llm, site
):
    agent_app.browser.live.control_wait = 0.3
    sid = await agent.new_session()
    chat = await agent.connect(sid)
    panel = await watch(agent, sid)
    await panel.send(type="control", take=True)
    await panel.until(is_state(in_control=True))

    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": f"{site}/x"})]), Reply(text="later")
    )
    frames = await chat.turn("open it", timeout=60)
    result = next(f for f in frames if f["type"] == "tool_result")
    assert not result["ok"] and "controlling this chat's browser" in result["content"]
    assert "try again later" in result["content"].lower()

    second = await watch(agent, sid)
    await second.send(type="control", take=True)
    conflict = await second.until(lambda f: f["type"] == "error")
    assert conflict[-1]["code"] == "browser_controlled"
    panel.close()  # a person who goes away hands control back
    await second.until(is_state(controlled_by=None))


async def test_should_follow_the_tab_the_page_opens(agent, agent_app, site):
    sid = await agent.new_session()
    panel = await watch(agent, sid)
    await panel.send(type="control", take=True)
    await panel.send(type="input", action="navigate", url=f"{site}/links")
    await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/links")
    async with agent_app.browser.use(sid, for_agent=False) as session:
        box = await session.page.locator("#tab").bounding_box()

    await panel.send(type="input", action="click", x=box["x"] + 5, y=box["y"] + 5)

    await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/opened-in-a-tab")
    assert agent_app.browser.current_page(sid).url == f"{site}/opened-in-a-tab"


async def test_should_stream_screenshots_where_there_is_no_screencast(agent, agent_app, site):
    agent_app.browser.live.screencast = False
    agent_app.browser.live.screenshot_interval = 0.05
    sid = await agent.new_session()
    panel = await watch(agent, sid)
    await panel.send(type="control", take=True)

    await panel.send(type="input", action="navigate", url=f"{site}/polled")

    frame = (await panel.until(lambda f: f["type"] == "frame" and f["url"] == f"{site}/polled"))[-1]
    assert base64.b64decode(frame["data"])[:2] == b"\xff\xd8"
    assert (frame["width"], frame["height"], frame["title"]) == (1280, 800, "Live page")


class ReadOnlyAgentAuthorizer(Authorizer):
    """Everyone may watch the agent; nobody may act through it."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read" if resource == "agent" else True


class TestWatcherWithoutWritePermission:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        config = copy.deepcopy(jp_server_config)
        config["ServerApp"]["authorizer_class"] = ReadOnlyAgentAuthorizer
        return config

    async def test_should_watch_but_not_take_control_or_send_input(self, agent, agent_app, site):
        sid = agent_app.service.sessions.create("shared").id
        panel = await watch(agent, sid)
        assert (await agent.request("GET", "sessions", sid, "browser"))[0] == 200

        await panel.send(type="control", take=True)
        await panel.send(type="input", action="navigate", url=f"{site}/x")
        refused = [await panel.next(), await panel.next()]
        await settled(panel)

        assert [f["code"] for f in refused] == ["forbidden", "forbidden"]
        assert agent_app.browser.current_page(sid) is None
        _, state = await agent.request("GET", "sessions", sid, "browser")
        assert state["controlled_by"] is None
