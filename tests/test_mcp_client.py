"""The MCP client: tools of the servers in ``c.JupyterAgent.mcp_servers`` work like the agent's own.

Each test's Jupyter server connects to a small MCP server the test writes and starts: on stdio (a command with
a credential in its environment) and over streamable HTTP on 127.0.0.1 (a credential in a header, which the
server checks). What a person sees: the tools listed with policy "ask", an approval before a call, the result
marked as untrusted (side effects ask for the rest of the turn), the audit entry, tools that come and go with
the server's list, and a server that cannot start reported in health and to the model, not fatal.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_agent.mcp.config import ServerSpec, tool_name
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import wait_for

TOKEN = "demo-secret-token-4f9a2c"

SERVER = f'''
import os, sys
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("demo")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    credential = "with" if os.environ.get("DEMO_TOKEN") == "{TOKEN}" else "without"
    return f"echo: {{text}} ({{credential}} the credential)"


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool 'later'."""
    server.add_tool(lambda: "later!", name="later", description="Added later.")
    await ctx.notify_tools_changed()
    return "grown"


@server.tool()
async def shrink(ctx: Context) -> str:
    """Remove the tool 'later'."""
    server.remove_tool("later")
    await ctx.notify_tools_changed()
    return "shrunk"


if __name__ == "__main__" and len(sys.argv) == 1:
    server.run()
elif __name__ == "__main__":
    import uvicorn

    app = server.streamable_http_app()

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != b"Bearer {TOKEN}":
            await send({{"type": "http.response.start", "status": 401, "headers": []}})
            await send({{"type": "http.response.body", "body": b"no credential"}})
            return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


@pytest.fixture(scope="module")
def server_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "demo_server.py"
    path.write_text(SERVER)
    return path


@pytest.fixture(scope="module")
def mcp_http_url(server_script: Path) -> Iterator[str]:
    """The demo server over streamable HTTP on 127.0.0.1; yields its URL once it accepts connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(server_script), str(port)])
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the MCP test server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # a process coming up: polled, with a deadline
    raise TimeoutError(f"the MCP test server did not listen on {port}")


async def health(agent) -> dict[str, Any]:
    _, body = await agent.request("GET", "health", expect=200)
    return body["mcp_servers"]


async def settled(agent, app, name: str) -> dict[str, Any]:
    """The server's health once it is no longer starting."""
    connection = app.mcp.connections[name]
    await wait_for(lambda: connection.state != "starting", timeout=60, what=f"MCP server {name} to settle")
    return (await health(agent))[name]


async def tools(agent) -> dict[str, dict[str, Any]]:
    _, body = await agent.request("GET", "tools", expect=200)
    return {t["name"]: t for t in body["tools"]}


class TestStdio:
    @pytest.fixture
    def agent_config(self, agent_config: dict[str, Any], server_script: Path) -> dict[str, Any]:
        agent_config["mcp_servers"] = {
            "demo": {"command": sys.executable, "args": [str(server_script)], "env": {"DEMO_TOKEN": TOKEN}},
            "broken": {"command": str(server_script.parent / "no-such-server")},
        }
        agent_config["tool_policy"] = {"mcp_demo_grow": "allow", "mcp_demo_shrink": "allow"}
        return agent_config

    async def test_its_tools_are_listed_and_ask_before_each_call(self, agent, agent_app, llm) -> None:
        assert (await settled(agent, agent_app, "demo"))["state"] == "ready"
        listed = await tools(agent)
        assert listed["mcp_demo_echo"]["policy"] == "ask"
        assert listed["mcp_demo_echo"]["description"].startswith("[MCP server demo] Say the text back.")
        assert listed["mcp_demo_grow"]["policy"] == "allow"

        llm.script(
            Reply(tool_calls=[ToolCallSpec("mcp_demo_echo", {"text": "hello"}, id="e")]),
            Reply(tool_calls=[ToolCallSpec("file_write", {"path": "note.txt", "content": "x"}, id="w")]),
            Reply(text="done"),
        )
        ws = await agent.connect(await agent.new_session())
        await ws.send(type="prompt", text="echo hello")
        [*_, ask] = await ws.until_type("approval_request")
        assert ask["name"] == "mcp_demo_echo" and ask["reason"] == "mcp_demo_echo asks before it runs"
        await ws.send(type="approve", call_id="e", decision="once")
        # What the server returned is untrusted: the file write that follows asks, saying why.
        frames = await ws.until_type("approval_request")
        [result] = [f for f in frames if f["type"] == "tool_result" and f["call_id"] == "e"]
        assert result["ok"], result
        assert "echo: hello (with the credential)" in result["content"]
        assert result["content"].startswith('<untrusted_mcp_content source="demo/echo">')
        assert frames[-1]["call_id"] == "w"
        assert frames[-1]["reason"] == "the agent read mcp_demo_echo in this turn"
        await ws.send(type="approve", call_id="w", decision="deny")
        await ws.until_type("done")

        _, audit = await agent.request("GET", "audit", params={"limit": "50"}, expect=200)
        [entry] = [e for e in audit["entries"] if e["action"] == "tool:mcp_demo_echo"]
        assert entry["detail"]["outcome"] == "ok" and entry["detail"]["approval"]["decision"] == "once"

    async def test_tools_come_and_go_with_the_servers_list(self, agent, agent_app, llm) -> None:
        await settled(agent, agent_app, "demo")
        assert "mcp_demo_later" not in await tools(agent)
        router = agent_app.engine.router
        llm.script(Reply(tool_calls=[ToolCallSpec("mcp_demo_grow", {}, id="g")]), Reply(text="grown"))
        ws = await agent.connect(await agent.new_session())
        await ws.turn("grow")
        await wait_for(lambda: router.get("mcp_demo_later"), what="the new tool")
        assert (await tools(agent))["mcp_demo_later"]["policy"] == "ask"

        llm.script(Reply(tool_calls=[ToolCallSpec("mcp_demo_shrink", {}, id="s")]), Reply(text="shrunk"))
        await ws.turn("shrink")
        await wait_for(lambda: router.get("mcp_demo_later") is None, what="the tool to go")
        assert "mcp_demo_later" not in await tools(agent)
        assert "mcp_demo_later" not in (await health(agent))["demo"]["tools"]

    async def test_a_server_that_cannot_start_is_reported_and_the_rest_works(
        self, agent, agent_app, llm
    ) -> None:
        broken = await settled(agent, agent_app, "broken")
        assert broken["state"] == "failed" and broken["transport"] == "stdio"
        assert "cannot start" in broken["error"] and "no-such-server" in broken["error"]
        assert (await settled(agent, agent_app, "demo"))["state"] == "ready"

        llm.script(Reply(text="I cannot reach it"))
        ws = await agent.connect(await agent.new_session())
        frames = await ws.turn("use the broken server")
        assert frames[-1]["type"] == "done"
        system = llm.requests[-1]["messages"][0]["content"]
        assert "MCP server broken (unavailable: cannot start" in system


class TestHttp:
    @pytest.fixture
    def agent_config(self, agent_config: dict[str, Any], mcp_http_url: str) -> dict[str, Any]:
        agent_config["mcp_servers"] = {
            "web": {"url": mcp_http_url, "headers": {"Authorization": f"Bearer {TOKEN}"}, "policy": "allow"},
            "nokey": {"url": mcp_http_url},
        }
        return agent_config

    async def test_its_tools_run_with_the_header_and_the_credential_stays_hidden(
        self, agent, agent_app, llm
    ) -> None:
        assert (await settled(agent, agent_app, "web"))["state"] == "ready"
        assert (await tools(agent))["mcp_web_echo"]["policy"] == "allow"
        llm.script(
            Reply(tool_calls=[ToolCallSpec("mcp_web_echo", {"text": f"the key is {TOKEN}"}, id="e")]),
            Reply(text="done"),
        )
        ws = await agent.connect(await agent.new_session())
        frames = await ws.turn("echo")
        [result] = [f for f in frames if f["type"] == "tool_result"]
        assert result["ok"] and "echo: the key is" in result["content"]
        assert TOKEN not in str(frames), json.dumps(
            [f for f in frames if TOKEN in str(f)]
        )  # the header's value is a secret wherever it turns up

    async def test_a_server_that_refuses_the_request_is_reported(self, agent, agent_app) -> None:
        nokey = await settled(agent, agent_app, "nokey")
        assert nokey["state"] == "failed" and nokey["transport"] == "http"
        assert nokey["error"]
        assert not [name for name in await tools(agent) if name.startswith("mcp_nokey_")]


def test_tool_names_fit_every_provider() -> None:
    assert tool_name("demo", "echo") == "mcp_demo_echo"
    odd = tool_name("demo", "search.issues/v2")
    long = tool_name("demo", "x" * 100)
    assert odd.startswith("mcp_demo_search_issues_v2_") and len(long) == 64
    assert tool_name("demo", "a.b") != tool_name("demo", "a_b")
    for name in (odd, long):
        assert all(c.isalnum() or c in "_-" for c in name)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, 'needs either "command"'),
        ({"command": "x", "url": "http://a"}, "not both"),
        ({"url": "ftp://a"}, "http:// or https://"),
        ({"command": "x", "env": {"A": 1}}, "env must be a dict of strings"),
        ({"command": "x", "policy": "sometimes"}, "policy must be one of"),
        ({"command": "x", "extra": 1}, "unknown keys ['extra']"),
    ],
)
def test_a_bad_entry_says_what_to_fix(entry: dict[str, Any], message: str) -> None:
    from jupyter_agent.settings import JupyterAgent

    with pytest.raises(ValueError, match=re.escape(message)):
        JupyterAgent(mcp_servers={"s": entry})
    with pytest.raises(ValueError, match="a server's name"):
        ServerSpec.parse("bad name", {"command": "x"})
