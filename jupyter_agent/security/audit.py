"""The audit log: who asked for what, which tools ran with which arguments, who approved them, what was refused.

Entries live in the store's ``audit`` table as a hash chain (see :meth:`jupyter_agent.store.Store.audit`):
:func:`verify_chain` recomputes it and names the first entry that was changed, removed or slipped in. With
``audit_log_file`` set, every entry is also appended to that file as one JSON line (with its hash), for log
shipping: a copy outside the database that a changed database can be compared with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_agent.security.redaction import Redactor, Vault
from jupyter_agent.store import Store, audit_digest

log = logging.getLogger(__name__)


class AuditTrail:
    """Writes audit entries: redacted, chained in the store, mirrored to a JSON-lines file when configured."""

    def __init__(self, store: Store, redactor: Redactor, mirror: str | Path | None = None) -> None:
        self.store = store
        self.redactor = redactor
        self.mirror = Path(mirror).expanduser() if mirror else None
        self._lock = threading.Lock()
        if self.mirror is not None:
            self.mirror.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        session: str | None,
        user: str | None,
        action: str,
        detail: dict[str, Any],
        vault: Vault | None = None,
    ) -> dict[str, Any]:
        """Append one entry (``detail`` is redacted here, with ``vault``'s placeholders); returns it."""
        entry = self.store.audit(session, user, action, self.redactor.redact(detail, vault))
        if self.mirror is not None:
            self._mirror(entry)
        return entry

    def _mirror(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, default=str, ensure_ascii=False) + "\n"
        try:
            # One write of one line in append mode: lines from processes sharing the file never interleave.
            with self._lock:
                fd = os.open(self.mirror, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # type: ignore[arg-type]
                try:
                    os.write(fd, line.encode("utf-8"))
                finally:
                    os.close(fd)
        except OSError:
            log.exception("Could not append audit entry %s to %s", entry.get("id"), self.mirror)


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold: entry ``id``, and why."""

    id: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.id}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    entries: int  # entries checked
    broken: ChainBreak | None  # None: intact

    @property
    def intact(self) -> bool:
        return self.broken is None


def verify_chain(entries: Iterable[dict[str, Any]], allocated: int = 0) -> ChainReport:
    """Check a chain of entries as stored, oldest first (``Store.audit_chain()``).

    ``allocated`` is the highest id ever given out (``Store.audit_allocated()``): entries removed from the
    end leave it above the last id. Ids are consecutive from 1, so a removed entry is named by its id.
    """
    expected_id, previous, count = 1, "", 0
    for entry in entries:
        count += 1
        if entry["id"] != expected_id:
            removed = (
                "it was"
                if entry["id"] == expected_id + 1
                else f"entries {expected_id} to {entry['id'] - 1} were"
            )
            return ChainReport(count, ChainBreak(expected_id, f"missing ({removed} removed)"))
        if not entry.get("hash"):
            return ChainReport(
                count, ChainBreak(entry["id"], "has no hash (it was not written by the agent)")
            )
        if entry.get("prev_hash") != previous:
            return ChainReport(
                count,
                ChainBreak(
                    entry["id"], "its link to the entry before it is broken (prev_hash does not match)"
                ),
            )
        if audit_digest(entry) != entry["hash"]:
            return ChainReport(count, ChainBreak(entry["id"], "hash mismatch (its content was changed)"))
        previous, expected_id = entry["hash"], expected_id + 1
    if allocated >= expected_id:
        return ChainReport(count, ChainBreak(expected_id, "missing (the last entries were removed)"))
    return ChainReport(count, None)


def verify_store(store: Store) -> ChainReport:
    """Check the audit chain of ``store``."""
    store.flush()
    return verify_chain(store.audit_chain(), store.audit_allocated())
