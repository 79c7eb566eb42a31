"""SQLite storage: sessions, their append-only event logs, the audit log and small values.

Several processes share one store: the Jupyter server, any number of kernels (magics, the agent kernel) and
CLI runs. The rules that keep their sessions intact:

- Each session has one **writer**, the store instance (one per process) that appends its events. The others
  read it (the chat panel shows a kernel's session read-only, live). A session whose writer has gone (its
  process exited, was killed, or closed its sessions) can be claimed by another writer, atomically.
- Sequence numbers are allocated by the database, in the same write transaction as the event they number,
  so two processes can never write the same ``seq``.
- Whether a writer is alive is decided by its process (same host: its pid and start time) and, within one
  process, by whether that store instance is still open on the same database file.

Writes are committed in batches: every write schedules one commit on the running event loop, so a stream of
tokens costs one commit per loop iteration, not one per token; :meth:`Store.flush` commits at once. Readers
in other processes see a batch when it commits (WAL mode: readers never block the writer).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    owner TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    session TEXT,
    user TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    turn TEXT NOT NULL,
    ts REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_turn ON changes (session, turn, id);
-- Usage analytics read prompts, model usage and turn ends by time; partial, so token events cost nothing more.
CREATE INDEX IF NOT EXISTS events_for_analytics ON events (ts) WHERE type IN ('message', 'usage', 'done', 'error');
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: Columns added after the first release, with their definitions (added to older stores when opened).
MIGRATIONS = {
    ("sessions", "shared"): "INTEGER NOT NULL DEFAULT 0",  # visible to the collaborators, not just the owner
    ("sessions", "writer"): "TEXT",
    ("audit", "prev_hash"): "TEXT",  # the hash chain: see Store.audit
    ("audit", "hash"): "TEXT",
}

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's batch to commit (they take milliseconds)

# Store instances open in this process, by writer id, with the database file each is open on.
_open_writers: dict[str, str] = {}
_open_lock = threading.Lock()


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is no such process."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # gone, or not ours to inspect (then it exists: say so by its pid alone)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return -1.0
        return -1.0


class Store:
    """Durable state of the agent. ``path=":memory:"`` keeps everything in memory (tests, one-shot CLI).

    ``role`` says what kind of process writes through this store (``server``, ``kernel``, ``cli``): other
    processes show it when they read one of its sessions.
    """

    def __init__(self, path: str | Path, role: str = "process") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.path = os.path.realpath(self.path)
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level="DEFERRED"
        )
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._db.commit()
        self._commit_scheduled = False
        self._closed = False
        start = _process_start(os.getpid())
        self.writer: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "role": role,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": start if start and start > 0 else None,
        }
        self._writer_json = json.dumps(self.writer, sort_keys=True)
        with _open_lock:
            _open_writers[self.writer["id"]] = self.path

    def _migrate(self) -> None:
        for (table, column), definition in MIGRATIONS.items():
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                try:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError as err:  # another process added it first
                    if "duplicate column" not in str(err):
                        raise
        self._seal_old_audit()

    # -- writers ------------------------------------------------------------------------------------------
    def writer_alive(self, writer: dict[str, Any] | None) -> bool:
        """Whether the store instance ``writer`` describes can still write (see the module docstring)."""
        if not writer or writer.get("released"):
            return False
        if writer.get("id") == self.writer["id"]:
            return True
        if writer.get("host") != self.writer["host"]:
            return True  # another machine's process: nothing here can tell it is gone, so never take over
        pid = writer.get("pid")
        if not isinstance(pid, int):
            return False
        if pid == os.getpid():
            with _open_lock:
                return _open_writers.get(str(writer.get("id"))) == self.path
        started = _process_start(pid)
        if started is None:
            return False
        recorded = writer.get("started")
        if started < 0 or not isinstance(recorded, int | float):
            return True
        return abs(started - recorded) < 1.0  # else the pid was reused by a new process

    def claim_session(self, session_id: str) -> dict[str, Any] | None:
        """Become the writer of a session whose writer has gone; returns the writer that now has it.

        Atomic across processes: of two stores claiming at once, one wins and the other gets the winner.
        """
        self.flush()
        for _ in range(3):
            row = self._db.execute("SELECT writer FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            current = _writer(row["writer"])
            if self.writer_alive(current):
                return current
            changed = self._db.execute(
                "UPDATE sessions SET writer = ? WHERE id = ? AND writer IS ?",
                (self._writer_json, session_id, row["writer"]),
            ).rowcount
            self._db.commit()
            if changed:
                return self.writer
        return _writer(
            self._db.execute("SELECT writer FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
        )

    def release_sessions(self) -> None:
        """Give up writing this store's sessions (a clean shutdown): others may claim them at once.

        The writer stays recorded, marked released, so people can still tell which process wrote them.
        """
        released = json.dumps({**self.writer, "released": True}, sort_keys=True)
        self._db.execute("UPDATE sessions SET writer = ? WHERE writer = ?", (released, self._writer_json))
        self.flush()

    # -- sessions -----------------------------------------------------------------------------------
    def create_session(self, session_id: str, title: str, owner: str | None) -> dict[str, Any]:
        now = time.time()
        self._db.execute(
            "INSERT INTO sessions (id, title, owner, created, updated, last_seq, writer)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            (session_id, title, owner, now, now, self._writer_json),
        )
        self._changed()
        return {
            "id": session_id,
            "title": title,
            "owner": owner,
            "created": now,
            "updated": now,
            "last_seq": 0,
            "shared": False,
            "writer": dict(self.writer),
        }

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _session(row) if row else None

    def list_sessions(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM sessions ORDER BY updated DESC").fetchall()
        return [_session(r) for r in rows]

    def share_session(self, session_id: str, shared: bool) -> None:
        self._db.execute("UPDATE sessions SET shared = ? WHERE id = ?", (int(shared), session_id))
        self._changed()

    def rename_session(self, session_id: str, title: str) -> None:
        self._db.execute(
            "UPDATE sessions SET title = ?, updated = ? WHERE id = ?", (title, time.time(), session_id)
        )
        self._changed()

    def delete_session(self, session_id: str) -> None:
        self._db.execute("DELETE FROM events WHERE session = ?", (session_id,))
        self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self._db.execute("DELETE FROM kv WHERE key = ?", (f"plan:{session_id}",))
        self._db.execute("DELETE FROM changes WHERE session = ?", (session_id,))
        self._db.execute(
            "DELETE FROM kv WHERE key = ? OR key GLOB ?",
            (f"edit_mode:{session_id}", f"review:{session_id}:*"),
        )
        self._changed()

    # -- events -------------------------------------------------------------------------------------
    def append_event(self, event: dict[str, Any]) -> int:
        """Append one event (it carries ``session``, ``ts`` and ``type``); returns the ``seq`` it was given.

        The number comes from the session's row in the same transaction (its write lock is held until the
        batch commits), so it is unique across processes; ``event["seq"]`` is set to it.
        """
        row = self._db.execute(
            "UPDATE sessions SET last_seq = last_seq + 1, updated = ? WHERE id = ? RETURNING last_seq",
            (event["ts"], event["session"]),
        ).fetchone()
        if row is None:
            raise KeyError(f"no session {event['session']!r} in the store")
        event["seq"] = seq = row[0]
        self._db.execute(
            "INSERT INTO events (session, seq, ts, type, data) VALUES (?, ?, ?, ?, ?)",
            (event["session"], seq, event["ts"], event["type"], json.dumps(event)),
        )
        self._changed()
        return seq

    def last_seq(self, session_id: str) -> int:
        row = self._db.execute("SELECT last_seq FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row[0] if row else 0

    def events(self, session_id: str, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT data FROM events WHERE session = ? AND seq > ? ORDER BY seq"
        args: tuple[Any, ...] = (session_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [json.loads(r[0]) for r in self._db.execute(sql, args)]

    def iter_events(self, session_id: str, types: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        marks = ",".join("?" * len(types))
        sql = f"SELECT data FROM events WHERE session = ? AND type IN ({marks}) ORDER BY seq"
        for row in self._db.execute(sql, (session_id, *types)).fetchall():
            yield json.loads(row[0])

    def data_version(self) -> int:
        """A number that changes when another connection commits (cheap: polled to follow other writers)."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    # -- what turns changed (collaboration.review) -----------------------------------------------------
    def add_change(self, session_id: str, turn: str, change: dict[str, Any]) -> int:
        """Record one change a turn made to a notebook or file; returns its id (increasing)."""
        cursor = self._db.execute(
            "INSERT INTO changes (session, turn, ts, data) VALUES (?, ?, ?, ?)",
            (session_id, turn, time.time(), json.dumps(change)),
        )
        self._changed()
        return int(cursor.lastrowid or 0)

    def changes(self, session_id: str, turn: str) -> list[dict[str, Any]]:
        """The changes a turn made, in the order it made them (each with its ``id``)."""
        rows = self._db.execute(
            "SELECT id, data FROM changes WHERE session = ? AND turn = ? ORDER BY id", (session_id, turn)
        )
        return [{**json.loads(data), "id": id} for id, data in rows]

    def changed_turns(self, session_id: str) -> list[str]:
        """The turns of a session that changed something, oldest first."""
        rows = self._db.execute(
            "SELECT turn FROM changes WHERE session = ? GROUP BY turn ORDER BY MIN(id)", (session_id,)
        )
        return [row[0] for row in rows]

    # -- audit and small values -------------------------------------------------------------------------
    def audit(
        self, session: str | None, user: str | None, action: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        """Append one entry to the audit log; returns it. ``detail`` must already be redacted.

        Entries form a hash chain: each holds the hash of the one before it (``prev_hash``) and its own
        (``hash``, see :func:`audit_digest`). The last entry is read and the new one written in one write
        transaction, so the processes that share the store chain their entries in commit order.
        """
        if not self._db.in_transaction:
            # Take the write lock before reading the last hash. An open transaction holds it already: every
            # one here began with a write (sqlite3 opens them before INSERT/UPDATE/DELETE only), and in WAL
            # mode a transaction reading an older snapshot could not write at all.
            self._db.execute("BEGIN IMMEDIATE")
        self._seal_old_audit()
        last = self._db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        entry: dict[str, Any] = {
            "ts": time.time(),
            "session": session,
            "user": user,
            "action": action,
            "detail": json.dumps(detail, default=str),
            "prev_hash": (last[0] or "") if last else "",
        }
        cursor = self._db.execute(
            "INSERT INTO audit (ts, session, user, action, detail, prev_hash) VALUES (?, ?, ?, ?, ?, ?)",
            (entry["ts"], session, user, action, entry["detail"], entry["prev_hash"]),
        )
        entry["id"] = cursor.lastrowid
        entry["hash"] = audit_digest(entry)
        self._db.execute("UPDATE audit SET hash = ? WHERE id = ?", (entry["hash"], entry["id"]))
        self._changed()
        return {**entry, "detail": detail}

    def _seal_old_audit(self) -> None:
        """Chain the entries written before the audit log had a hash chain (an older store), oldest first.

        Only entries older than every chained one: an entry without a hash after chained ones was not written
        by the agent, and :func:`jupyter_agent.security.audit.verify_chain` reports it. Committed by the caller.
        """
        first = self._db.execute("SELECT hash FROM audit ORDER BY id LIMIT 1").fetchone()
        if first is None or first[0] is not None:
            return
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        chained = self._db.execute("SELECT MIN(id) FROM audit WHERE hash IS NOT NULL").fetchone()[0]
        rows = self._db.execute(
            "SELECT * FROM audit WHERE hash IS NULL AND id < ? ORDER BY id",
            (chained if chained is not None else 2**63 - 1,),
        ).fetchall()
        previous = ""
        for row in rows:
            entry = {**dict(row), "prev_hash": previous}
            previous = audit_digest(entry)
            self._db.execute(
                "UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?",
                (entry["prev_hash"], previous, row["id"]),
            )

    def audit_log(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first: the ``limit`` before entry ``before`` (else the latest)."""
        rows = self._db.execute(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 2**63 - 1, limit),
        ).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def audit_chain(self) -> Iterator[dict[str, Any]]:
        """Every audit entry as stored (``detail`` as its JSON text), oldest first: what the chain covers."""
        for row in self._db.execute("SELECT * FROM audit ORDER BY id"):
            yield dict(row)

    def audit_allocated(self) -> int:
        """The highest audit id ever given out (AUTOINCREMENT never reuses one): entries deleted from the end
        leave it above the last entry's id."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        return int(row[0]) if row else 0

    def recent_tool_calls(self, rows: int) -> list[tuple[str, bool, float | None, str]]:
        """The tool calls among the newest ``rows`` audit entries, newest first: ``(tool, ok, duration_ms,
        outcome)``. The duration is None where the call waited for a person (it would measure them, not the
        tool). Reads the columns it needs in SQLite, so refilling the tools' statistics at start stays cheap."""
        cursor = self._db.execute(
            "SELECT substr(action, 6), json_extract(detail, '$.outcome'), json_extract(detail, '$.duration_ms'),"
            " json_extract(detail, '$.approval') IS NOT NULL FROM audit"
            " WHERE id > (SELECT COALESCE(MAX(id), 0) FROM audit) - ? AND action GLOB 'tool:*' ORDER BY id DESC",
            (rows,),
        )
        return [
            (tool, outcome == "ok", None if asked or duration is None else float(duration), str(outcome))
            for tool, outcome, duration, asked in cursor
        ]

    def usage_events(self, since: float, until: float) -> list[dict[str, Any]]:
        """What usage analytics need of the events from ``since`` to ``until`` (epoch s, until excluded),
        oldest first: prompts (with the sender), model usage and turn ends, their small fields only (never a
        prompt's text), and each session's owner (for turns whose prompt came before ``since``)."""
        rows = self._db.execute(
            "SELECT e.session, e.ts, e.type, json_extract(e.data, '$.turn'), json_extract(e.data, '$.task'),"
            " json_extract(e.data, '$.role'), json_extract(e.data, '$.user.username'),"
            " json_extract(e.data, '$.prompt_tokens'), json_extract(e.data, '$.completion_tokens'),"
            " json_extract(e.data, '$.cost'), json_extract(e.data, '$.ttft_ms'), s.owner"
            " FROM events e LEFT JOIN sessions s ON s.id = e.session"
            " WHERE e.type IN ('message', 'usage', 'done', 'error') AND e.ts >= ? AND e.ts < ? ORDER BY e.ts",
            (since, until),
        )
        keys = ("session", "ts", "type", "turn", "task", "role", "user", "prompt_tokens", "completion_tokens")
        keys += ("cost", "ttft_ms", "owner")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def tool_audit(self, since: float, until: float) -> list[dict[str, Any]]:
        """The audit entries of tool calls from ``since`` to ``until`` (epoch s, until excluded): user, tool,
        outcome, duration, and the approval decision (None: nobody was asked)."""
        rows = self._db.execute(
            "SELECT ts, user, substr(action, 6), json_extract(detail, '$.outcome'),"
            " json_extract(detail, '$.duration_ms'), json_extract(detail, '$.approval') IS NOT NULL,"
            " json_extract(detail, '$.approval.decision')"
            " FROM audit WHERE action GLOB 'tool:*' AND ts >= ? AND ts < ? ORDER BY id",
            (since, until),
        )
        keys = ("ts", "user", "tool", "outcome", "duration_ms", "asked", "decision")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def get_value(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_value(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )
        self._changed()

    # -- commits ------------------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._commit_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._db.commit()
            return
        self._commit_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._commit_scheduled = False
        if not self._closed:  # a commit scheduled before close() found the work done already
            self._db.commit()

    def close(self) -> None:
        try:
            self.release_sessions()
            self._db.commit()
        finally:
            with _open_lock:
                _open_writers.pop(self.writer["id"], None)
            self._closed = True
            self._db.close()


def audit_digest(entry: dict[str, Any]) -> str:
    """The hash of one audit entry: SHA-256 of the canonical JSON of its fields and the previous hash.

    ``detail`` is taken as stored (JSON text), so checking the chain never depends on re-serialising it.
    """
    fields = {k: entry[k] for k in ("id", "ts", "session", "user", "action", "detail", "prev_hash")}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _writer(raw: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _session(row: sqlite3.Row) -> dict[str, Any]:
    meta = dict(row)
    meta["writer"] = _writer(meta.get("writer"))
    meta["shared"] = bool(meta.get("shared"))
    return meta
