"""The agent acts as the person who asked: three people on one real server, each route and each tool.

The server runs with the IdentityProvider and Authorizer of tests/identities.py, the kind a JupyterHub
deployment uses: ``owner`` may do everything, ``collaborator`` may chat and read files but not run code,
write files or open a terminal, ``reader`` may only watch. Sessions are private to their owner until shared.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import AgentClient
from tests.identities import person_client, with_people

PEOPLE = ("owner", "collaborator", "reader")


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any], agent_config: dict[str, Any]) -> dict[str, Any]:
    agent_config["tool_policy"] = {"shell_run": "allow"}
    return with_people(jp_server_config)


@pytest.fixture
def people(jp_serverapp, jp_fetch, jp_http_port, jp_base_url) -> dict[str, AgentClient]:
    clients = {name: person_client(name, jp_fetch, jp_http_port, jp_base_url) for name in PEOPLE}
    yield clients
    for client in clients.values():
        client.close()


def call(name: str, call_id: str, **arguments: Any) -> ToolCallSpec:
    return ToolCallSpec(name, arguments, id=call_id)


def results(frames: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["call_id"]: f for f in frames if f["type"] == "tool_result"}


async def test_each_route_answers_each_person_by_their_rights_and_the_session_owner(people) -> None:
    owner, collaborator, reader = (people[n] for n in PEOPLE)
    private = await owner.new_session("owner's private notes")
    theirs = await collaborator.new_session("collaborator's own")
    status, _ = await reader.request("POST", "sessions", body={"title": "mine"})
    table: dict[str, tuple[int, ...]] = {"POST /sessions (reader)": (status,)}

    for route, parts in (("GET", ("sessions", private)), ("GET", ("sessions", private, "events"))):
        label = f"{route} /{'/'.join((*parts[:1], '{private}', *parts[2:]))}"
        table[label] = tuple([(await people[n].request(route, *parts))[0] for n in PEOPLE])
    listed = {
        n: [s["id"] for s in (await people[n].request("GET", "sessions"))[1]["sessions"]] for n in PEOPLE
    }

    assert table == {
        "POST /sessions (reader)": (403,),
        "GET /sessions/{private}": (200, 404, 404),
        "GET /sessions/{private}/events": (200, 404, 404),
    }
    assert listed == {"owner": [private], "collaborator": [theirs], "reader": []}
    with pytest.raises(Exception, match="404"):
        await collaborator.connect(private)

    # Only the owner shares; then the collaborators of its notebook see it, and the reader only watches.
    assert (await collaborator.request("PATCH", "sessions", private, body={"shared": True}))[0] == 404
    status, shared = await owner.request("PATCH", "sessions", private, body={"shared": True})
    assert status == 200 and shared["shared"] is True
    assert (await collaborator.request("GET", "sessions", private))[0] == 200
    assert (await collaborator.request("PATCH", "sessions", private, body={"shared": False}))[0] == 403
    assert (await collaborator.request("DELETE", "sessions", private))[0] == 403
    watching = await reader.connect(private)
    await watching.send(type="prompt", text="let me in")
    refused = await watching.until_type("error")
    assert refused[-1]["code"] == "forbidden" and "seq" not in refused[-1]
    assert (await owner.request("DELETE", "sessions", private))[0] == 204


async def test_a_collaborator_without_execute_or_write_rights_gets_no_code_run_and_no_file_written(
    people, llm, jp_root_dir, agent_app
) -> None:
    (jp_root_dir / "notes.txt").write_text("readable")
    llm.script(
        Reply(
            tool_calls=[
                call("file_read", "c1", path="notes.txt"),
                call("file_write", "c2", path="made.txt", content="by the collaborator"),
                call("shell_run", "c3", command="touch ran.txt"),
                call("notebook_run_cell", "c4", path="t.ipynb", cell_id="x"),
            ]
        ),
        Reply(text="done"),
    )
    session = await people["collaborator"].new_session()
    ws = await people["collaborator"].connect(session)
    got = results(await ws.turn("do things"))

    assert got["c1"]["ok"] and "readable" in got["c1"]["content"]
    for call_id, permission in (
        ("c2", "contents:write"),
        ("c3", "terminals:execute"),
        ("c4", "kernels:execute"),
    ):
        assert not got[call_id]["ok"]
        assert got[call_id]["content"] == f"Error: not permitted: collaborator lacks {permission}"
    assert not (jp_root_dir / "made.txt").exists() and not (jp_root_dir / "ran.txt").exists()
    refusals = [a for a in agent_app.service.store.audit_log(200) if "not permitted" in str(a["detail"])]
    assert refusals, "each refusal is in the audit log"

    # The owner, with the same script, may.
    llm.script(
        Reply(tool_calls=[call("file_write", "o1", path="made.txt", content="by the owner")]),
        Reply(text="ok"),
    )
    owner_session = await people["owner"].new_session()
    owner_ws = await people["owner"].connect(owner_session)
    assert results(await owner_ws.turn("write it"))["o1"]["ok"]
    assert (jp_root_dir / "made.txt").read_text() == "by the owner"


async def test_an_approval_is_answered_only_by_someone_allowed_to_run_the_tool(
    people, llm, jp_root_dir, agent_app
) -> None:
    agent_app.engine.router.policy_overrides["shell_run"] = "ask"
    llm.script(
        Reply(tool_calls=[call("shell_run", "s1", command="echo approved > out.txt")]), Reply(text="ok")
    )
    session = await people["owner"].new_session()
    await people["owner"].request("PATCH", "sessions", session, body={"shared": True})
    owner_ws = await people["owner"].connect(session)
    collaborator_ws = await people["collaborator"].connect(session)
    await owner_ws.send(type="prompt", text="run it")
    await owner_ws.until_type("approval_request")

    await collaborator_ws.send(type="approve", call_id="s1", decision="once")
    refused = (await collaborator_ws.until(lambda f: f["type"] == "error" and "seq" not in f))[-1]
    assert refused["code"] == "forbidden" and "terminals:execute" in refused["message"]
    assert not (jp_root_dir / "out.txt").exists()

    await owner_ws.send(type="approve", call_id="s1", decision="once")
    frames = await owner_ws.until_type("done", "error")
    assert results(frames)["s1"]["ok"]
    assert (jp_root_dir / "out.txt").read_text().strip() == "approved"


async def test_every_route_for_each_person_on_a_private_session_and_then_a_shared_one(people) -> None:
    """The table of the closing note: every REST route and the WebSocket, for each person."""
    owner = people["owner"]
    private = await owner.new_session("private")
    routes: list[tuple[str, tuple[str, ...], Any]] = [
        ("GET", ("health",), None),
        ("GET", ("tools",), None),
        ("GET", ("sessions",), None),
        ("POST", ("sessions",), {"title": "t"}),
        ("GET", ("sessions", "{s}"), None),
        ("PATCH", ("sessions", "{s}"), {"title": "renamed"}),
        ("GET", ("sessions", "{s}", "events"), None),
        ("GET", ("sessions", "{s}", "plan"), None),
        ("GET", ("sessions", "{s}", "files", "restore"), None),
        ("POST", ("sessions", "{s}", "files", "restore"), {"path": "nothing.txt"}),
        ("GET", ("sessions", "{s}", "browser"), None),
        ("POST", ("transcribe",), {}),
        ("GET", ("audit",), None),
    ]

    async def table(session: str) -> dict[str, tuple[int, ...]]:
        rows = {}
        for method, parts, body in routes:
            path = tuple(p.replace("{s}", session) for p in parts)
            statuses = [(await people[n].request(method, *path, body=body))[0] for n in PEOPLE]
            rows[f"{method} /api/agent/{'/'.join(parts)}"] = tuple(statuses)
        outcomes = []
        for name in PEOPLE:
            _, meta = await owner.request("GET", "sessions", session)
            try:
                ws = await people[name].connect(session, after=meta["last_seq"])  # only what follows
            except Exception as err:
                outcomes.append("404" if "404" in str(err) else repr(err))
                continue
            await ws.send(type="prompt", text="hello")
            frame = (await ws.until(lambda f: f["type"] in ("error", "done")))[-1]
            outcomes.append("refused" if frame["type"] == "error" and "seq" not in frame else "ran")
        rows["WS prompt"] = tuple(outcomes)
        return rows

    before = await table(private)
    await owner.request("PATCH", "sessions", private, body={"shared": True}, expect=200)
    after = await table(private)
    print("\nroute | owner, collaborator, reader | private session | shared session")
    for route in before:
        print(f"{route} | {before[route]} | {after[route]}")

    assert before == {
        "GET /api/agent/health": (200, 200, 200),
        "GET /api/agent/tools": (200, 200, 200),
        "GET /api/agent/sessions": (200, 200, 200),
        "POST /api/agent/sessions": (201, 201, 403),
        "GET /api/agent/sessions/{s}": (200, 404, 404),
        "PATCH /api/agent/sessions/{s}": (200, 404, 403),
        "GET /api/agent/sessions/{s}/events": (200, 404, 404),
        "GET /api/agent/sessions/{s}/plan": (404, 404, 404),  # the owner's: no plan yet
        "GET /api/agent/sessions/{s}/files/restore": (200, 404, 404),
        "POST /api/agent/sessions/{s}/files/restore": (404, 404, 403),  # the owner's: no backup
        "GET /api/agent/sessions/{s}/browser": (200, 404, 404),
        "POST /api/agent/transcribe": (400, 400, 403),  # no audio sent
        "GET /api/agent/audit": (200, 403, 403),
        "WS prompt": ("ran", "404", "404"),
    }
    assert after == {
        **before,
        "GET /api/agent/sessions/{s}": (200, 200, 200),
        "PATCH /api/agent/sessions/{s}": (200, 200, 403),
        "GET /api/agent/sessions/{s}/events": (200, 200, 200),
        "GET /api/agent/sessions/{s}/files/restore": (200, 200, 200),
        "POST /api/agent/sessions/{s}/files/restore": (404, 404, 403),
        "GET /api/agent/sessions/{s}/browser": (200, 200, 200),
        "WS prompt": ("ran", "ran", "refused"),
    }
