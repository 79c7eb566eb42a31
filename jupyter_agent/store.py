"""SQLite storage: sessions, their append-only event logs, the audit log and tool statistics.

One connection, used from one thread (the server's event loop). Writes are committed in batches: every
write schedules one commit on the running event loop, so a stream of tokens costs one commit per loop
iteration, not one per token; :meth:`Store.flush` commits at once (shutdown, tests).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
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
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """Durable state of the agent. ``path=":memory:"`` keeps everything in memory (tests, one-shot CLI)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level="DEFERRED")
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()
        self._commit_scheduled = False

    # -- sessions -----------------------------------------------------------------------------------
    def create_session(self, session_id: str, title: str, owner: str | None) -> dict[str, Any]:
        now = time.time()
        self._db.execute(
            "INSERT INTO sessions (id, title, owner, created, updated, last_seq) VALUES (?, ?, ?, ?, ?, 0)",
            (session_id, title, owner, now, now),
        )
        self._changed()
        return {
            "id": session_id,
            "title": title,
            "owner": owner,
            "created": now,
            "updated": now,
            "last_seq": 0,
        }

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return dict(row) if row else None

    def list_sessions(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM sessions ORDER BY updated DESC").fetchall()
        return [dict(r) for r in rows]

    def rename_session(self, session_id: str, title: str) -> None:
        self._db.execute(
            "UPDATE sessions SET title = ?, updated = ? WHERE id = ?", (title, time.time(), session_id)
        )
        self._changed()

    def delete_session(self, session_id: str) -> None:
        self._db.execute("DELETE FROM events WHERE session = ?", (session_id,))
        self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self._db.execute("DELETE FROM kv WHERE key = ?", (f"plan:{session_id}",))
        self._changed()

    # -- events -------------------------------------------------------------------------------------
    def append_event(self, event: dict[str, Any]) -> None:
        """Append one event (it already carries ``session``, ``seq``, ``ts`` and ``type``)."""
        self._db.execute(
            "INSERT INTO events (session, seq, ts, type, data) VALUES (?, ?, ?, ?, ?)",
            (event["session"], event["seq"], event["ts"], event["type"], json.dumps(event)),
        )
        self._db.execute(
            "UPDATE sessions SET last_seq = ?, updated = ? WHERE id = ?",
            (event["seq"], event["ts"], event["session"]),
        )
        self._changed()

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
        for row in self._db.execute(sql, (session_id, *types)):
            yield json.loads(row[0])

    # -- audit and small values -------------------------------------------------------------------------
    def audit(self, session: str | None, user: str | None, action: str, detail: dict[str, Any]) -> None:
        """Record one action. ``detail`` must already be redacted."""
        self._db.execute(
            "INSERT INTO audit (ts, session, user, action, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), session, user, action, json.dumps(detail, default=str)),
        )
        self._changed()

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

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
        self._db.commit()

    def close(self) -> None:
        self.flush()
        self._db.close()
