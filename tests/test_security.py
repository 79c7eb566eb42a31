"""Security through the real server: authentication, authorization, the workspace root and secrets."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.engine.llm import preload_litellm
from jupyter_agent.errors import NotFound, PathOutsideRoot
from jupyter_agent.security.paths import resolve_in_root
from jupyter_agent.testing.scripted_llm import Fail, Reply, ToolCallSpec
from jupyter_agent.tools.base import Tool, ToolContext, object_schema, tool

CONFIGURED_KEY = "sk-test-secret-key-123456"  # agent_config's model_options api_key in conftest
OUTSIDE_SECRET = "OUTSIDE-THE-ROOT-do-not-leak-7f3a"


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    """Import litellm before the first test, not in a background thread while short tests start and end."""
    preload_litellm().result(timeout=120)


def call(tool_name: str, call_id: str, /, **arguments: Any) -> ToolCallSpec:
    return ToolCallSpec(tool_name, arguments, id=call_id)


async def all_events(agent, session_id: str) -> list[dict[str, Any]]:
    _, data = await agent.request("GET", "sessions", session_id, "events", expect=200)
    return data["events"]


def results_by_call(frames: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["call_id"]: f for f in frames if f["type"] == "tool_result"}


# -- authentication ---------------------------------------------------------------------------------------


@pytest.fixture
def anonymous(jp_http_port, jp_base_url):
    """Requests to the agent's API that carry no token and no cookie."""
    client = AsyncHTTPClient()
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/agent/"

    async def fetch(method: str, path: str, body: Any = None) -> int:
        if body is None and method in ("POST", "PATCH"):
            body = {}
        payload = None if body is None else json.dumps(body)
        response = await client.fetch(base + path, method=method, body=payload, raise_error=False)
        return response.code

    return fetch


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("GET", "health", None),
        ("GET", "tools", None),
        ("GET", "sessions", None),
        ("POST", "sessions", {"title": "intruder"}),
        ("GET", "sessions/{sid}", None),
        ("PATCH", "sessions/{sid}", {"title": "hijacked"}),
        ("DELETE", "sessions/{sid}", None),
        ("GET", "sessions/{sid}/events", None),
        ("GET", "sessions/{sid}/files/restore", None),
        ("POST", "sessions/{sid}/files/restore", {"path": "notes.txt"}),
    ],
)
async def test_every_agent_route_refuses_a_request_without_credentials(agent, anonymous, method, route, body):
    sid = await agent.new_session("private")

    status = await anonymous(method, route.format(sid=sid), body)

    assert status == 403
    _, session = await agent.request("GET", "sessions", sid, expect=200)
    assert session["title"] == "private" and session["last_seq"] == 0
    _, listed = await agent.request("GET", "sessions", expect=200)
    assert [s["id"] for s in listed["sessions"]] == [sid]


async def test_the_session_websocket_refuses_a_connection_without_credentials(
    agent, jp_http_port, jp_base_url
):
    sid = await agent.new_session()
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}api/agent/sessions/{sid}/ws"

    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url))

    assert refused.value.code == 403


async def test_a_wrong_token_is_refused_like_no_token(agent, jp_http_port, jp_base_url):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/agent/sessions"
    headers = {"Authorization": "token not-the-server-token"}

    response = await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False)

    assert response.code == 403


# -- the workspace root -----------------------------------------------------------------------------------


@pytest.fixture
def outside(jp_root_dir: Path) -> Path:
    """A directory next to the server root holding files the agent must never read or write."""
    folder = Path(jp_root_dir).parent / "outside"
    folder.mkdir()
    (folder / "outside.txt").write_text(f"{OUTSIDE_SECRET}\n", encoding="utf-8")
    notebook = {"cells": [], "metadata": {"secret": OUTSIDE_SECRET}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "x.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    return folder


async def test_file_and_notebook_tools_refuse_paths_outside_the_root(agent, llm, jp_root_dir, outside):
    root = Path(jp_root_dir)
    escape = os.path.relpath(outside, root)  # "../outside"
    os.symlink(outside / "outside.txt", root / "link.txt")
    calls = {
        "dotdot": call("file_read", "dotdot", path=f"{escape}/outside.txt"),
        "absolute": call("file_read", "absolute", path=str(outside / "outside.txt")),
        "passwd": call("file_read", "passwd", path="/etc/passwd"),
        "symlink": call("file_read", "symlink", path="link.txt"),
        "write": call("file_write", "write", path=f"{escape}/x.txt", content="planted"),
        "notebook": call("notebook_read", "notebook", path=f"{escape}/x.ipynb"),
    }
    llm.script(Reply(tool_calls=list(calls.values())), Reply(text="I can only work inside the workspace."))
    sid = await agent.new_session()
    ws = await agent.connect(sid)

    frames = await ws.turn("read the files next door")

    assert frames[-1]["type"] == "done"
    results = results_by_call(frames)
    assert sorted(results) == sorted(calls)
    for call_id, result in results.items():
        assert result["ok"] is False, (call_id, result)
        assert "outside the workspace root" in result["content"], (call_id, result["content"])
    assert not (outside / "x.txt").exists()
    logged = json.dumps(await all_events(agent, sid))
    sent_to_model = json.dumps(llm.requests)
    for text in (logged, sent_to_model):
        assert OUTSIDE_SECRET not in text
        assert "root:x:0:0" not in text


async def test_file_list_does_not_show_symlinks_that_leave_the_root(agent, llm, jp_root_dir, outside):
    root = Path(jp_root_dir)
    (root / "inside.txt").write_text("hello", encoding="utf-8")
    os.symlink(outside, root / "door")
    llm.script(Reply(tool_calls=[call("file_list", "list")]), Reply(text="listed"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)

    frames = await ws.turn("what is here?")

    listing = results_by_call(frames)["list"]
    assert listing["ok"] is True
    assert "inside.txt" in listing["content"]
    assert "door" not in listing["content"]


def test_resolve_in_root_accepts_relative_paths_that_stay_inside(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)

    assert resolve_in_root(root, "sub/../a.txt") == root / "a.txt"
    assert resolve_in_root(root, "./sub/b.txt") == root / "sub" / "b.txt"
    assert resolve_in_root(root, "") == root
    assert resolve_in_root(root, ".") == root


@pytest.mark.parametrize("path", ["..", "../a.txt", "sub/../../a.txt", "sub/../../root-evil/a.txt"])
def test_resolve_in_root_refuses_paths_that_climb_out(tmp_path, path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "root-evil").mkdir()

    with pytest.raises(PathOutsideRoot, match="outside the workspace root"):
        resolve_in_root(root, path)


def test_resolve_in_root_accepts_an_absolute_path_inside_and_refuses_one_outside(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    sibling = tmp_path / "root-evil"  # shares the root's name as a prefix, but is not inside it
    sibling.mkdir()

    assert resolve_in_root(root, str(root / "data" / "a.csv")) == root / "data" / "a.csv"
    with pytest.raises(PathOutsideRoot):
        resolve_in_root(root, "/etc/passwd")
    with pytest.raises(PathOutsideRoot):
        resolve_in_root(root, str(sibling / "a.csv"))


def test_resolve_in_root_follows_symlinks_before_deciding(tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("x", encoding="utf-8")
    os.symlink(elsewhere, root / "escape")
    os.symlink(root / "data", root / "shortcut")

    with pytest.raises(PathOutsideRoot):
        resolve_in_root(root, "escape/secret.txt")
    with pytest.raises(PathOutsideRoot):
        resolve_in_root(root, "escape")
    assert resolve_in_root(root, "shortcut/a.csv") == root / "data" / "a.csv"


def test_resolve_in_root_works_when_the_root_itself_is_a_symlink(tmp_path):
    real = tmp_path / "real-root"
    real.mkdir()
    os.symlink(real, tmp_path / "root")

    assert resolve_in_root(tmp_path / "root", "a.txt") == real / "a.txt"
    with pytest.raises(PathOutsideRoot):
        resolve_in_root(tmp_path / "root", "../real-root-sibling.txt")


def test_resolve_in_root_refuses_a_nul_byte(tmp_path):
    with pytest.raises(PathOutsideRoot, match="invalid path"):
        resolve_in_root(tmp_path, "notes.txt\x00.png")


def test_resolve_in_root_reports_a_missing_file_when_asked_to(tmp_path):
    with pytest.raises(NotFound, match=re.escape("no such file or directory: 'missing.txt'")):
        resolve_in_root(tmp_path, "missing.txt", must_exist=True)


# -- secrets ----------------------------------------------------------------------------------------------


AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # planted in a file
OPENAI_KEY = "sk-proj-Zt4q9LmXw2Rk7Vb1Nc8Hd3Fg6Js5Pa0Ye"  # planted in a cell output
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # in an exception a tool raises
PLANTED = (AWS_KEY, OPENAI_KEY, GITHUB_TOKEN, CONFIGURED_KEY)


def leaky_tool() -> Tool:
    """A tool that fails with a secret in its exception: the router logs the traceback."""

    @tool("leaky", "Connect to the database.", object_schema())
    async def leaky(ctx: ToolContext) -> str:
        raise RuntimeError(f"could not connect with token {GITHUB_TOKEN}")

    return leaky


def placeholder_after(body: dict[str, Any], label: str) -> str:
    """The placeholder the model read right after ``label`` in a tool result."""
    for message in body["messages"]:
        if message["role"] == "tool" and (
            found := re.search(re.escape(label) + r"(\[SECRET_[0-9a-f]{8}\])", message["content"])
        ):
            return found.group(1)
    raise AssertionError(f"no placeholder after {label!r} in what the model read")


class TestSecretsNeverLeave:
    @pytest.fixture
    def agent_config(self, agent_config, tmp_path):
        return {**agent_config, "audit_log_file": str(tmp_path / "audit" / "audit.jsonl")}

    async def test_secrets_in_a_cell_output_and_a_file_appear_in_no_event_log_audit_entry_or_model_request(
        self, agent, agent_app, llm, jp_root_dir, tmp_path, caplog
    ):
        root = Path(jp_root_dir)
        (root / "settings.txt").write_text(
            f"AWS_ACCESS_KEY_ID={AWS_KEY}\nregion=eu-west-1\n", encoding="utf-8"
        )
        notebook = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("client = connect()\nprint(client.key)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{OPENAI_KEY}\n")]
        notebook.cells.append(cell)
        nbformat.write(notebook, root / "report.ipynb")
        agent_app.service.router.register(leaky_tool())
        llm.script(
            Reply(
                tool_calls=[
                    call("notebook_read", "nb", path="report.ipynb"),
                    call("file_read", "file", path="settings.txt"),
                    call("leaky", "db"),
                ]
            ),
            # The model copies the placeholder it read into a new file: the tool gets the real key back.
            lambda body: Reply(
                tool_calls=[
                    call(
                        "file_write",
                        "copy",
                        path="copy.txt",
                        content=f"key={placeholder_after(body, 'AWS_ACCESS_KEY_ID=')}\n",
                    )
                ]
            ),
            Reply(text="Copied the key."),
        )
        sid = await agent.new_session()
        ws = await agent.connect(sid)

        with caplog.at_level(logging.INFO, logger="jupyter_agent"):
            frames = await ws.turn(f"my key {OPENAI_KEY}: check my setup")  # the session's title, too

        assert frames[-1]["type"] == "done"
        results = results_by_call(frames)
        assert results["nb"]["ok"] and results["file"]["ok"] and not results["db"]["ok"]
        assert (root / "copy.txt").read_text(encoding="utf-8") == f"key={AWS_KEY}\n"
        written = next(f for f in frames if f["type"] == "tool_call" and f["call_id"] == "copy")
        assert (
            written["arguments"]["content"]
            == f"key={placeholder_after(llm.requests[1], 'AWS_ACCESS_KEY_ID=')}\n"
        )
        summary = next(f for f in frames if f["type"] == "redaction")
        assert frames.index(summary) == len(frames) - 2, "the summary comes just before the turn ends"
        assert summary["counts"] == {"api_key": 1, "aws_access_key": 1, "github_token": 1}
        assert "Tool leaky raised" in caplog.text, "the failing tool was logged, with its traceback"
        everything = {
            "events": json.dumps(await all_events(agent, sid)),
            "frames": json.dumps(frames),
            "model requests": json.dumps(llm.requests),
            "audit log": json.dumps(agent_app.service.store.audit_log(1000)),
            "audit file": (tmp_path / "audit" / "audit.jsonl").read_text(encoding="utf-8"),
            "sessions": json.dumps(
                [
                    (await agent.request("GET", "sessions", sid))[1],
                    (await agent.request("GET", "sessions"))[1],
                ]
            ),
            "logs": caplog.text,
        }
        for where, text in everything.items():
            for secret in PLANTED:
                assert secret not in text, f"{secret} leaked into the {where}"
        assert "[SECRET_" in everything["model requests"] and "[SECRET_" in everything["audit log"]


PERSONAL = {
    "email": "ada.lovelace@example.org",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
}


class TestPersonalData:
    @pytest.fixture
    def agent_config(self, agent_config, redact_pii):
        return {**agent_config, "redact_pii": redact_pii}

    @pytest.mark.parametrize("redact_pii", [True, False])
    async def test_personal_data_is_hidden_from_the_model_only_with_redact_pii(
        self, agent, agent_app, llm, jp_root_dir, redact_pii
    ):
        lines = [f"{kind}: {value}" for kind, value in PERSONAL.items()]
        (Path(jp_root_dir) / "customer.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        llm.script(Reply(tool_calls=[call("file_read", "read", path="customer.txt")]), Reply(text="Read it."))
        sid = await agent.new_session()
        ws = await agent.connect(sid)

        frames = await ws.turn("who is the customer?")

        assert frames[-1]["type"] == "done" and results_by_call(frames)["read"]["ok"]
        seen = {
            "model requests": json.dumps(llm.requests),
            "events": json.dumps(await all_events(agent, sid)),
            "audit log": json.dumps(agent_app.service.store.audit_log(1000)),
        }
        summaries = [f for f in frames if f["type"] == "redaction"]
        if redact_pii:
            assert summaries[0]["counts"] == {"email": 1, "phone": 1, "card": 1, "iban": 1}
            assert "[EMAIL_" in seen["model requests"] and "[IBAN_" in seen["events"]
        else:
            assert summaries == []
        for value in PERSONAL.values():
            assert (value in seen["model requests"]) is not redact_pii
            assert (value in seen["events"]) is not redact_pii
            assert value not in seen["audit log"]  # it records calls and their outcome, not what tools read


async def test_a_provider_error_that_echoes_the_key_is_shown_masked(agent, llm):
    llm.script(Fail(401, message=f"Incorrect API key provided: {CONFIGURED_KEY}."))
    sid = await agent.new_session()
    ws = await agent.connect(sid)

    frames = await ws.turn("hello")

    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "auth_failed"
    assert "check the api key" in frames[-1]["message"].lower()
    assert CONFIGURED_KEY not in json.dumps(await all_events(agent, sid))


# -- a user who may read but not write --------------------------------------------------------------------


class ReadOnlyAgentAuthorizer(Authorizer):
    """Lets everyone watch the agent but nobody act through it; everything else in Jupyter is allowed."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read" if resource == "agent" else True


class TestReadOnlyUser:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        config = copy.deepcopy(jp_server_config)
        config["ServerApp"]["authorizer_class"] = ReadOnlyAgentAuthorizer
        return config

    async def test_may_list_sessions_but_not_create_change_or_delete_them(self, agent, agent_app):
        sid = agent_app.service.sessions.create("shared").id

        status, listed = await agent.request("GET", "sessions")
        assert status == 200 and [s["id"] for s in listed["sessions"]] == [sid]
        assert (await agent.request("GET", "sessions", sid, "events"))[0] == 200
        assert (await agent.request("POST", "sessions", body={"title": "mine"}))[0] == 403
        assert (await agent.request("PATCH", "sessions", sid, body={"title": "renamed"}))[0] == 403
        assert (await agent.request("DELETE", "sessions", sid))[0] == 403
        assert (await agent.request("POST", "sessions", sid, "files", "restore", body={"path": "a.txt"}))[
            0
        ] == 403
        assert [s["title"] for s in agent_app.service.sessions.list()] == ["shared"]

    async def test_may_watch_a_session_but_a_prompt_is_refused_and_no_turn_starts(
        self, agent, agent_app, llm
    ):
        session = agent_app.service.sessions.create("shared")
        ws = await agent.connect(session.id)  # the hello frame arrived: watching is allowed

        await ws.send(type="prompt", text="delete everything")
        refused = await ws.next()
        await ws.send(type="cancel")
        refused_cancel = await ws.next()
        await ws.send(type="ping", id=1)
        pong = await ws.next()

        for frame in (refused, refused_cancel):
            assert frame["type"] == "error" and frame["code"] == "forbidden"
            assert "seq" not in frame
        assert pong == {"type": "pong", "id": 1}, "nothing of a turn was sent in between"
        assert session.last_seq == 0 and session.events() == []
        assert llm.requests == []
