"""Several processes on one store: sequence numbers, writers, read-only sessions followed live, take-over.

The server, kernels and CLI runs share ``agent.db``. These tests run real processes against one file: a
session has one writer; others show it read-only and live; its turns are marked interrupted only once the
process that ran them is gone. The whole product (server, two kernels, a CLI run) is in
tests/test_shared_store.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_agent.engine.session import SessionManager
from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.errors import Conflict
from jupyter_agent.store import Store
from tests.engine_kit import WAIT

APPENDER = textwrap.dedent(
    """
    import sys, time
    from jupyter_agent.store import Store
    store = Store(sys.argv[1], role="cli")
    session, count, who = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(count):
        store.append_event({"type": "token", "session": session, "ts": time.time(), "text": f"{who}-{i}"})
    store.close()
    """
)

WRITER = textwrap.dedent(
    """
    import sys, time, uuid
    from jupyter_agent.store import Store
    store = Store(sys.argv[1], role="kernel")
    session = uuid.uuid4().hex
    store.create_session(session, "a kernel's session", "someone")
    store.append_event({"type": "message", "session": session, "ts": time.time(), "turn": "t1",
                        "role": "user", "content": "a long job"})
    print(session, flush=True)
    for line in sys.stdin:  # each line: one more token of the running turn
        store.append_event({"type": "token", "session": session, "ts": time.time(), "turn": "t1",
                            "text": line.strip()})
        print("ok", flush=True)
    """
)


class NoRunner:
    async def run_turn(self, turn: Any) -> Any:  # pragma: no cover - these sessions never run turns here
        raise AssertionError("no turn runs in this test")


def check_log(db: Path) -> dict[str, list[dict[str, Any]]]:
    """Every session's log read straight from the file: numbered 1..n with no gap, each row well formed."""
    con = sqlite3.connect(db)
    try:
        logs: dict[str, list[dict[str, Any]]] = {}
        for session, last_seq in con.execute("SELECT id, last_seq FROM sessions"):
            rows = con.execute("SELECT seq, data FROM events WHERE session = ? ORDER BY seq", (session,))
            events = []
            for seq, data in rows:
                event = json.loads(data)
                assert event["seq"] == seq and event["session"] == session, event
                events.append(event)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), f"gap in {session}"
            assert last_seq == len(events), f"{session}: last_seq {last_seq}, {len(events)} events"
            logs[session] = events
        return logs
    finally:
        con.close()


def test_processes_appending_to_one_session_at_once_get_unique_gap_free_numbers(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    store = Store(db)
    store.create_session("shared", "", None)
    store.flush()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(db), "shared", "300", f"p{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for i in range(300):  # this process appends meanwhile, committing each one
        store.append_event({"type": "token", "session": "shared", "ts": time.time(), "text": f"me-{i}"})
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    store.close()

    events = check_log(db)["shared"]
    assert len(events) == 1200
    for who in ("me", "p0", "p1", "p2"):  # each writer's events are all there, in its own order
        mine = [e["text"] for e in events if e["text"].startswith(f"{who}-")]
        assert mine == [f"{who}-{i}" for i in range(300)]


async def test_another_process_session_is_read_only_and_followed_live_until_its_writer_dies(
    tmp_path: Path,
) -> None:
    db = tmp_path / "agent.db"
    # The writer answers each line at once: blocking on it briefly keeps the test linear.
    writer = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", WRITER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        session_id = writer.stdout.readline().strip()
        manager = SessionManager(Store(db, role="server"), NoRunner())
        session = manager.get(session_id)
        seen: list[dict[str, Any]] = []
        access: list[dict[str, Any]] = []
        arrived = asyncio.Event()

        def listen(event: dict[str, Any]) -> None:
            seen.append(event)
            arrived.set()

        session.on_access(access.append)
        backlog = session.subscribe(listen, after=0)

        # Loading it wrote nothing: its turn is running in the kernel, not interrupted.
        assert [e["type"] for e in backlog] == ["message"]
        assert session.read_only and session.access()["read_only"]
        assert "a kernel (pid" in session.access()["message"]
        with pytest.raises(Conflict, match="read-only here"):
            session.submit("me too")
        with pytest.raises(Conflict):
            session.cancel()
        assert [s["read_only"] for s in manager.list()] == [True]

        # The kernel's new events reach this process's subscribers as they are committed.
        for text in ("one", "two"):
            writer.stdin.write(text + "\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "ok"
            while not any(e.get("text") == text for e in seen):
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), WAIT)
        assert [e["seq"] for e in seen] == [2, 3]

        # The kernel dies mid-turn: this process takes the session over and closes the turn it left open.
        writer.kill()
        writer.wait()
        while not any(e["type"] in TERMINAL_EVENTS for e in seen):
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), WAIT)
        end = seen[-1]
        assert end["type"] == "error" and end["code"] == "interrupted" and end["turn"] == "t1"
        assert end["seq"] == 4 and "the kernel that ran this turn stopped" in end["message"]
        assert access == [{"type": "access", "session": session_id, "read_only": False}]
        assert not session.read_only
        await manager.close()
        manager.store.close()
    finally:
        writer.kill()
        writer.wait()

    events = check_log(db)[session_id]
    assert [e["type"] for e in events] == ["message", "token", "token", "error"]


async def test_a_session_is_taken_over_only_when_its_writer_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    first = SessionManager(Store(db, role="kernel"), NoRunner())
    session = first.create("mine")
    session.emit("message", turn="t1", role="user", content="still working")
    first.store.flush()

    second = SessionManager(Store(db, role="server"), NoRunner())
    shown = second.get(session.id)
    assert shown.read_only and [e["type"] for e in shown.events()] == ["message"]
    with pytest.raises(Conflict):
        await second.delete(session.id)

    # A clean stop releases the session: the next process to load it continues it, closing the turn that
    # was left open (once).
    await first.close()
    third = SessionManager(Store(db, role="cli"), NoRunner())
    taken = third.get(session.id)
    assert not taken.read_only
    taken.emit("session", title="continued")
    assert [e["type"] for e in taken.events()] == ["message", "error", "session"]
    await third.close()
    await second.close()
    for manager in (first, second, third):
        manager.store.close()
    check_log(db)
