"""The audit log: what it records, its hash chain (and ``jupyter agent audit verify``), the admin-only route."""

from __future__ import annotations

import copy
import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer

from jupyter_agent.security.audit import AuditTrail, verify_store
from jupyter_agent.security.boundary import Outbound
from jupyter_agent.security.redaction import Redactor
from jupyter_agent.store import Store, audit_digest
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.test_cli import agent_cli
from tests.test_magics import kernel_env


def filled_store(path: Path, count: int = 5) -> Store:
    store = Store(path, role="cli")
    for n in range(1, count + 1):
        store.audit("s1", "ada", "tool:file_write", {"arguments": {"path": f"{n}.txt"}, "outcome": "ok"})
    store.flush()
    return store


def verify(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_agent.cli", "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


# -- the chain --------------------------------------------------------------------------------------------


def test_each_entry_holds_the_hash_of_the_one_before(tmp_path):
    store = filled_store(tmp_path / "agent.db")

    entries = list(reversed(store.audit_log()))

    assert [e["id"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == ""
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(entries))
    assert len({e["hash"] for e in entries}) == 5
    assert verify_store(store).intact and verify_store(store).entries == 5
    store.close()


def test_audit_verify_exits_zero_when_intact_and_names_an_entry_changed_behind_its_back(tmp_path):
    db = tmp_path / "agent.db"
    filled_store(db).close()

    intact = verify(db)
    with sqlite3.connect(db) as raw:
        raw.execute("""UPDATE audit SET detail = '{"arguments": {"path": "innocent.txt"}}' WHERE id = 3""")
    changed = verify(db)

    assert intact.returncode == 0, intact.stderr
    assert "intact: 5 entries" in intact.stdout
    assert changed.returncode == 1
    assert "entry 3: hash mismatch" in changed.stderr


@pytest.mark.parametrize(
    ("removed", "named"),
    [(2, "entry 2: missing (it was removed)"), (5, "entry 5: missing (the last entries were removed)")],
)
def test_audit_verify_names_an_entry_that_was_removed(tmp_path, removed, named):
    db = tmp_path / "agent.db"
    filled_store(db).close()

    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM audit WHERE id = ?", (removed,))
    result = verify(db)

    assert result.returncode == 1
    assert named in result.stderr


def test_audit_verify_names_a_rehashed_entry_by_its_broken_link(tmp_path):
    db = tmp_path / "agent.db"
    store = filled_store(db)
    forged = dict(next(e for e in store.audit_chain() if e["id"] == 2), detail='{"forged": true}')
    store.close()

    with sqlite3.connect(db) as raw:  # a careful forger recomputes the entry's own hash, not the next one's
        raw.execute(
            "UPDATE audit SET detail = ?, hash = ? WHERE id = 2", (forged["detail"], audit_digest(forged))
        )
    result = verify(db)

    assert result.returncode == 1
    assert "entry 3: its link to the entry before it is broken" in result.stderr


def test_audit_verify_fails_without_a_database(tmp_path):
    result = verify(tmp_path / "nowhere.db")

    assert result.returncode == 2 and "there is no agent database" in result.stderr


APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from jupyter_agent.store import Store, audit_digest

    store = Store(sys.argv[1], role="cli")
    count, who, batched = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "batched"
    print("ready", flush=True)
    sys.stdin.readline()  # start together

    async def in_batches():  # as the server does: entries of one loop iteration commit together
        for n in range(count):
            store.audit(None, who, "test", {"n": n})
            if n % 7 == 6:
                await asyncio.sleep(0)

    if batched:
        asyncio.run(in_batches())
    else:
        for n in range(count):
            store.audit(None, who, "test", {"n": n})
    store.close()
    """
)


def test_two_processes_appending_at_once_keep_one_intact_chain(tmp_path):
    db = tmp_path / "agent.db"
    Store(db).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(db), "300", who, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for who, mode in (("server", "batched"), ("kernel", "one by one"))
    ]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]

    store = Store(db)
    report = verify_store(store)
    users = [e["user"] for e in store.audit_chain()]
    store.close()

    assert report.intact, report.broken
    assert report.entries == 600 and users.count("server") == users.count("kernel") == 300


def test_entries_of_an_older_store_are_chained_when_it_is_opened(tmp_path):
    db = tmp_path / "agent.db"
    with sqlite3.connect(db) as raw:  # the audit table before it had a hash chain
        raw.execute(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, session TEXT, "
            "user TEXT, action TEXT NOT NULL, detail TEXT NOT NULL)"
        )
        for n in range(3):
            raw.execute(
                "INSERT INTO audit (ts, session, user, action, detail) VALUES (?, 's', 'ada', 'approve', ?)",
                (1700000000.0 + n, json.dumps({"n": n})),
            )

    store = Store(db)
    store.audit("s", "ada", "prompt", {"text": "hello"})
    store.flush()

    report = verify_store(store)
    assert report.intact and report.entries == 4
    assert [e["action"] for e in store.audit_chain()] == ["approve", "approve", "approve", "prompt"]
    store.close()


def test_every_entry_is_also_appended_to_the_json_lines_file(tmp_path):
    store = Store(tmp_path / "agent.db")
    trail = AuditTrail(store, Redactor(), tmp_path / "shipping" / "audit.jsonl")

    trail.record("s", "ada", "prompt", {"text": "use AKIAIOSFODNN7EXAMPLE"})
    trail.record("s", "ada", "tool:shell_run", {"arguments": {"command": "ls"}, "outcome": "ok"})
    store.flush()

    lines = [json.loads(line) for line in (tmp_path / "shipping" / "audit.jsonl").read_text().splitlines()]
    stored = {e["id"]: e for e in store.audit_log()}
    assert [line["id"] for line in lines] == [1, 2]
    assert all(line["hash"] == stored[line["id"]]["hash"] for line in lines)
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(lines) and "[SECRET_" in lines[0]["detail"]["text"]
    store.close()


# -- what a turn's events record -------------------------------------------------------------------------


class LoggedSession:
    """A session reduced to what the outbound hook needs: an id and an emit that passes through the hook."""

    def __init__(self, outbound: Outbound) -> None:
        self.id = "s1"
        self.outbound = outbound
        self.events: list[dict[str, Any]] = []

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type, **self.outbound(self, type, fields)}
        self.events.append(event)
        return event


def test_calls_refused_timed_out_or_cut_off_are_recorded_with_their_outcome(tmp_path):
    store = Store(tmp_path / "agent.db")
    session = LoggedSession(Outbound(Redactor(), AuditTrail(store, Redactor())))
    ada = {"username": "ada", "display_name": "Ada"}

    session.emit("message", turn="t1", role="user", content="tidy up", user=ada)
    for call_id, name in (("c1", "shell_run"), ("c2", "notebook_run_cell"), ("c3", "file_write")):
        session.emit("tool_call", turn="t1", call_id=call_id, name=name, arguments={"x": call_id})
    session.emit("approval_request", turn="t1", call_id="c1", name="shell_run", arguments={}, reason="")
    session.emit("approval_result", turn="t1", call_id="c1", decision="timeout")
    session.emit(
        "tool_result",
        turn="t1",
        call_id="c2",
        name="notebook_run_cell",
        ok=False,
        content="Error: you may not execute code in kernels here",
        data={"code": "not_permitted"},
        duration_ms=1.0,
    )
    session.emit("done", turn="t1", reason="cancelled")

    entries = list(store.audit_chain())
    actions = [(e["action"], json.loads(e["detail"]).get("outcome")) for e in entries]
    assert actions == [
        ("prompt", None),
        ("tool:shell_run", "not_run"),
        ("tool:notebook_run_cell", "not_permitted"),
        ("refused", None),
        ("tool:file_write", "cancelled"),
    ]
    assert all(e["user"] == "ada" for e in entries)
    assert json.loads(entries[1]["detail"])["approval"] == {"decision": "timeout", "by": None}
    assert json.loads(entries[3]["detail"]) == {
        "tool": "notebook_run_cell",
        "call_id": "c2",
        "reason": "you may not execute code in kernels here",
    }
    assert [e["type"] for e in session.events][-1] == "done"
    assert "redaction" not in [e["type"] for e in session.events], "nothing was hidden, so no summary"
    store.close()


# -- what the server records ---------------------------------------------------------------------------


class TestServerRecords:
    @pytest.fixture
    def agent_config(self, agent_config):
        return {**agent_config, "tool_policy": {"file_write": "ask"}}

    async def test_prompts_tool_calls_decisions_approvers_and_outcomes_are_recorded(
        self, agent, agent_app, llm
    ):
        llm.script(
            Reply(
                tool_calls=[
                    ToolCallSpec("file_write", {"path": "yes.txt", "content": "approved"}, id="yes"),
                    ToolCallSpec("file_write", {"path": "no.txt", "content": "denied"}, id="no"),
                    ToolCallSpec("file_read", {"path": "missing.txt"}, id="read"),
                ]
            ),
            Reply(text="Done."),
        )
        sid = await agent.new_session()
        ws = await agent.connect(sid)

        await ws.send(type="prompt", text="write two files, read one")
        asked = set()
        while asked != {"yes", "no"}:
            asked.add((await ws.until_type("approval_request"))[-1]["call_id"])
        await ws.send(type="approve", call_id="yes", decision="once")
        await ws.send(type="approve", call_id="no", decision="deny")
        frames = await ws.until_type("done", "error")

        assert frames[-1]["type"] == "done"
        entries = [e for e in reversed(agent_app.service.store.audit_log()) if e["session"] == sid]
        prompt = next(e for e in entries if e["action"] == "prompt")
        assert prompt["detail"]["text"] == "write two files, read one" and prompt["user"]
        calls = {e["detail"]["call_id"]: e for e in entries if e["action"].startswith("tool:")}
        assert calls["yes"]["action"] == "tool:file_write" and calls["yes"]["detail"]["outcome"] == "ok"
        assert calls["yes"]["detail"]["arguments"] == {"path": "yes.txt", "content": "approved"}
        assert calls["yes"]["detail"]["approval"] == {"decision": "once", "by": prompt["user"]}
        assert calls["no"]["detail"]["outcome"] == "denied"
        assert calls["no"]["detail"]["approval"] == {"decision": "deny", "by": prompt["user"]}
        assert (
            calls["read"]["detail"]["approval"] is None and calls["read"]["detail"]["outcome"] == "not_found"
        )
        assert "missing.txt" in calls["read"]["detail"]["error"]
        assert all(e["user"] == prompt["user"] for e in calls.values())
        assert verify_store(agent_app.service.store).intact


def test_a_command_line_run_records_its_prompt_and_tool_calls(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    llm.script(Reply(tool_calls=[ToolCallSpec("file_list", {"path": "."})]), Reply(text="Listed."))

    done = agent_cli("run", "list the files", "--notebook", "n.ipynb", env=env, cwd=tmp_path)
    verified = agent_cli("audit", "verify", env=env, cwd=tmp_path)
    shown = agent_cli("audit", "show", "--json", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert verified.returncode == 0, verified.stderr
    entries = json.loads(shown.stdout)
    assert [e["action"] for e in reversed(entries)] == ["prompt", "tool:file_list"]
    assert entries[0]["detail"]["outcome"] == "ok" and entries[1]["detail"]["text"] == "list the files"


# -- the admin route ------------------------------------------------------------------------------------


async def test_the_audit_route_pages_through_the_log_newest_first(agent, agent_app):
    for n in range(5):
        agent_app.service.audit("s", {"username": "ada"}, "test", {"n": n})

    _, first = await agent.request("GET", "audit", params={"limit": "2"}, expect=200)
    _, second = await agent.request(
        "GET", "audit", params={"limit": "2", "before": str(first["next"])}, expect=200
    )
    _, last = await agent.request(
        "GET", "audit", params={"limit": "2", "before": str(second["next"])}, expect=200
    )
    status, _ = await agent.request("GET", "audit", params={"limit": "0"})

    assert [e["detail"]["n"] for e in first["entries"] + second["entries"] + last["entries"]] == [
        4,
        3,
        2,
        1,
        0,
    ]
    assert last["next"] is None
    assert all(e["hash"] and e["user"] == "ada" for e in first["entries"])
    assert status == 400


class NoAuditAuthorizer(Authorizer):
    """Everyone may use the agent; nobody may read its audit log."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "agent_audit"


class TestNonAdmin:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        config = copy.deepcopy(jp_server_config)
        config["ServerApp"]["authorizer_class"] = NoAuditAuthorizer
        return config

    async def test_is_refused_the_audit_log_and_the_refusal_is_recorded(self, agent, agent_app):
        agent_app.service.audit("s", {"username": "ada"}, "test", {"n": 1})

        status, _ = await agent.request("GET", "audit")
        sessions, _ = await agent.request("GET", "sessions")

        assert status == 403 and sessions == 200
        refused = agent_app.service.store.audit_log(1)[0]
        assert refused["action"] == "refused" and refused["user"]
        assert refused["detail"] == {
            "method": "GET",
            "path": refused["detail"]["path"],
            "resource": "agent_audit",
            "permission": "read",
        }
        assert refused["detail"]["path"].endswith("/api/agent/audit")
