"""The MCP server at ``/api/agent/mcp``: the agent's tools for an outside MCP client, behind Jupyter's auth.

The ``mcp`` Python SDK's own client talks to the test server: with the Jupyter token it lists the tools and
inserts a cell that a person with the notebook open (a pycrdt collaborator) sees at once, with the agent's
presence in the room; without a token it gets 401. Each call runs with the caller's rights and policy.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tests.clients import AgentClient, agent_in_room, room_socket, wait_for
from tests.identities import auth_header, with_people
from tests.test_notebook_live import make_notebook


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """The SDK's client over streamable HTTP, sending ``headers`` (the Jupyter token) with every request."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), cache=None) as client,
    ):
        yield client


@pytest.fixture
def mcp_url(http_server_client, jp_http_port: int, jp_base_url: str) -> str:
    """The endpoint of the test server, listening (``http_server_client`` starts its HTTP server)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/agent/mcp"


async def refused_by_the_sdk(url: str, headers: dict[str, str]) -> None:
    """The SDK's client cannot even connect: the HTTP error comes back as an MCPError (in task groups)."""
    from mcp import MCPError

    with pytest.raises((MCPError, ExceptionGroup)) as refused:
        async with mcp_client(url, headers) as client:
            await client.list_tools()
    error = refused.value
    while isinstance(error, ExceptionGroup):
        [error] = error.exceptions
    assert isinstance(error, MCPError) and "error response" in str(error)


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def test_a_client_with_the_token_edits_the_live_notebook_and_everyone_sees_it(
    agent, mcp_url, jp_auth_header, jp_root_dir, collab, jp_fetch, jp_http_port, jp_base_url
) -> None:
    path = make_notebook(jp_root_dir, sources=("a = 1",))
    async with collab(path) as doc, mcp_client(mcp_url, jp_auth_header) as client:
        await wait_for(lambda: len(doc.ycells) == 1, what="the collaborator's first sync")
        room, _ = await room_socket(jp_fetch, jp_http_port, jp_base_url, jp_auth_header, path)
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"notebook_insert_cell", "notebook_run_cell", "file_read", "browser_navigate"} <= set(listed)
        assert listed["notebook_insert_cell"].input_schema["required"] == ["path", "source"]

        result = await client.call_tool(
            "notebook_insert_cell", {"path": path, "source": "print('from outside')"}
        )
        assert not result.is_error, text(result)
        assert f"of {path}" in text(result)
        await wait_for(lambda: len(doc.ycells) == 2, what="the cell in the collaborator's notebook")
        assert str(doc.ycells[1]["source"]) == "print('from outside')"
        await agent_in_room(room)
        room.close()

    _, audit = await agent.request("GET", "audit", params={"limit": "20"}, expect=200)
    [entry] = [e for e in audit["entries"] if e["action"] == "tool:notebook_insert_cell"]
    assert entry["detail"]["via"] == "mcp" and entry["detail"]["outcome"] == "ok"
    assert entry["user"] and entry["detail"]["arguments"]["path"] == path


async def test_without_a_token_the_endpoint_answers_401(mcp_url) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    for credentials in ({}, {"Authorization": "token not-the-token"}):
        with pytest.raises(HTTPClientError) as refused:
            await AsyncHTTPClient().fetch(
                HTTPRequest(mcp_url, method="POST", body=body, headers={**headers, **credentials})
            )
        assert refused.value.code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("token")
        assert "Authorization: token" in json.loads(refused.value.response.body)["message"]
    await refused_by_the_sdk(mcp_url, {})


async def test_a_tool_that_asks_is_refused_saying_how_to_allow_it(
    mcp_url, jp_auth_header, jp_root_dir
) -> None:
    async with mcp_client(mcp_url, jp_auth_header) as client:
        result = await client.call_tool("shell_run", {"command": "touch ran.txt"})
    assert result.is_error
    assert "cannot be given over MCP" in text(result)
    assert 'c.JupyterAgent.tool_policy = {"shell_run": "allow"}' in text(result)
    assert not (jp_root_dir / "ran.txt").exists()


async def test_secrets_leave_as_placeholders_and_come_back_as_values(
    mcp_url, jp_auth_header, jp_root_dir
) -> None:
    key = "sk-proj-" + "Zq8x" * 10
    (jp_root_dir / "settings.env").write_text(f"OPENAI_API_KEY={key}\n")
    async with mcp_client(mcp_url, jp_auth_header) as client:
        read = text(await client.call_tool("file_read", {"path": "settings.env"}))
        assert key not in read and "[SECRET_" in read
        placeholder = read[read.index("[SECRET_") :].split("]")[0] + "]"
        written = await client.call_tool("file_write", {"path": "copy.env", "content": placeholder})
    assert not written.is_error, text(written)
    assert (jp_root_dir / "copy.env").read_text() == key


class TestPeople:
    """Each caller has their own rights over MCP, as in their own requests (tests/identities.py)."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        return with_people(jp_server_config)

    async def test_a_call_runs_with_the_callers_rights_only(
        self, jp_fetch, jp_http_port, jp_base_url, mcp_url, jp_root_dir
    ) -> None:
        path = make_notebook(jp_root_dir, sources=("a = 1",))
        async with mcp_client(mcp_url, auth_header("collaborator")) as client:
            read = await client.call_tool("notebook_read", {"path": path})
            write = await client.call_tool("notebook_insert_cell", {"path": path, "source": "b = 2"})
        assert not read.is_error and "a = 1" in text(read)
        assert write.is_error and "not permitted: collaborator lacks contents:write" in text(write)

        await refused_by_the_sdk(mcp_url, auth_header("reader"))  # may not use the agent: 403

        owner = AgentClient(
            functools.partial(jp_fetch, headers=auth_header("owner")), jp_http_port, jp_base_url, {}
        )
        _, audit = await owner.request("GET", "audit", params={"limit": "50"}, expect=200)
        refusals = [e for e in audit["entries"] if e["action"] == "refused" and e["user"] == "collaborator"]
        assert refusals and refusals[0]["detail"]["tool"] == "notebook_insert_cell"
