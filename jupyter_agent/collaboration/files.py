"""File reads and writes inside the workspace root, with backups, through shared documents when open.

A file that a collaborative editor has open is changed through its shared document (granular text edits),
so the people editing it see the change live and keep their own edits; otherwise the file is replaced
atomically on disk. Every write or patch first keeps a backup that :meth:`Workspace.restore` puts back.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from jupyter_agent.collaboration.documents import DocumentProvider, agent_transaction
from jupyter_agent.errors import BadRequest, NotFound
from jupyter_agent.security.paths import relative_to_root, resolve_in_root

MAX_READ_BYTES = 2_000_000
MAX_LIST_ENTRIES = 500


class Workspace:
    """The files under the server root, as the agent sees them."""

    def __init__(
        self, root_dir: Path | str, backup_dir: Path | str, documents: DocumentProvider | None = None
    ) -> None:
        self.root_dir = Path(os.path.realpath(root_dir))
        self.backup_dir = Path(backup_dir)
        self.documents = documents

    def resolve(self, path: str) -> Path:
        return resolve_in_root(self.root_dir, path)

    def api_path(self, target: Path) -> str:
        return relative_to_root(self.root_dir, target)

    async def _current_text(self, target: Path) -> tuple[str, Any]:
        """The file's text as collaborators see it now (the shared document when one is open)."""
        doc = await self.documents.open_text(self.api_path(target)) if self.documents else None
        if doc is not None:
            return doc.source, doc
        if not target.is_file():
            raise NotFound(f"no file at {self.api_path(target)!r}")
        if target.stat().st_size > MAX_READ_BYTES:
            raise BadRequest(
                f"{self.api_path(target)!r} is larger than {MAX_READ_BYTES} bytes; read it in a cell instead"
            )
        try:
            return target.read_text(encoding="utf-8"), None
        except UnicodeDecodeError:
            raise BadRequest(f"{self.api_path(target)!r} is not a UTF-8 text file") from None

    async def read(self, path: str, offset: int | None = None, limit: int | None = None) -> dict[str, Any]:
        target = self.resolve(path)
        if target.is_dir():
            raise BadRequest(f"{path!r} is a directory; use file_list")
        text, _ = await self._current_text(target)
        lines = text.splitlines(keepends=True)
        start = max(0, (offset or 1) - 1)
        end = len(lines) if limit is None else min(len(lines), start + max(0, limit))
        return {
            "path": self.api_path(target),
            "content": "".join(lines[start:end]),
            "first_line": start + 1,
            "last_line": end,
            "total_lines": len(lines),
        }

    async def write(self, path: str, content: str, session_id: str = "") -> dict[str, Any]:
        target = self.resolve(path)
        if target.suffix == ".ipynb":
            raise BadRequest(
                "use the notebook tools to change a notebook: rewriting the .ipynb would overwrite "
                "collaborators' edits"
            )
        if target.is_dir():
            raise BadRequest(f"{path!r} is a directory")
        doc = (
            await self.documents.open_text(self.api_path(target))
            if self.documents and target.is_file()
            else None
        )
        backup = self._backup(target, session_id)
        if doc is not None:
            with agent_transaction(doc):
                _set_text(doc, content)
            live = True
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, content)
            live = False
        return {"path": self.api_path(target), "bytes": len(content.encode()), "backup": backup, "live": live}

    async def patch(self, path: str, old: str, new: str, session_id: str = "") -> dict[str, Any]:
        if not old:
            raise BadRequest("old must be non-empty: it is the exact text to replace")
        target = self.resolve(path)
        if target.suffix == ".ipynb":
            raise BadRequest("use notebook_edit_cell to change a notebook cell")
        text, doc = await self._current_text(target)
        count = text.count(old)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise BadRequest(
                f"the text to replace {where} in {self.api_path(target)!r}; give an exact, unique excerpt"
            )
        backup = self._backup(target, session_id)
        at = text.index(old)
        if doc is not None:
            with agent_transaction(doc):
                ytext = doc.ydoc.get("source", type=_text_type())
                del ytext[at : at + len(old)]
                ytext.insert(at, new)
        else:
            _atomic_write(target, text[:at] + new + text[at + len(old) :])
        return {
            "path": self.api_path(target),
            "backup": backup,
            "live": doc is not None,
            "line": text.count("\n", 0, at) + 1,
        }

    def list(self, path: str = ".", pattern: str | None = None) -> dict[str, Any]:
        target = self.resolve(path)
        if target.is_file():
            raise BadRequest(f"{path!r} is a file, not a directory: read it with file_read")
        if not target.is_dir():
            raise BadRequest(f"{path!r} is not a directory")
        entries = []
        candidates = target.glob(pattern) if pattern else target.iterdir()
        for child in sorted(candidates):
            if any(part.startswith(".") for part in child.relative_to(target).parts):
                continue
            try:
                resolve_in_root(self.root_dir, str(child))
            except Exception:
                continue  # a symlink that leaves the root is not listed
            entries.append(
                {
                    "path": self.api_path(child) if child.exists() else str(child),
                    "type": "directory" if child.is_dir() else "file",
                    "size": child.stat().st_size if child.is_file() else None,
                }
            )
            if len(entries) >= MAX_LIST_ENTRIES:
                break
        return {
            "path": self.api_path(target),
            "entries": entries,
            "truncated": len(entries) >= MAX_LIST_ENTRIES,
        }

    # -- backups ------------------------------------------------------------------------------------
    def _backup(self, target: Path, session_id: str) -> str | None:
        if not target.is_file():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"{time.time() % 1:.6f}"[1:]
        name = self.api_path(target).replace("/", "__")
        dest = self.backup_dir / (session_id or "_") / f"{stamp}--{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, dest)
        return dest.name

    def backups(self, session_id: str, path: str | None = None) -> list[dict[str, Any]]:
        folder = self.backup_dir / (session_id or "_")
        if not folder.is_dir():
            return []
        wanted = self.api_path(self.resolve(path)).replace("/", "__") if path else None
        out = []
        for item in sorted(folder.iterdir(), reverse=True):
            stamp, _, name = item.name.partition("--")
            if wanted is None or name == wanted:
                out.append({"backup": item.name, "path": name.replace("__", "/"), "created": stamp})
        return out

    async def restore(self, session_id: str, path: str, backup: str | None = None) -> dict[str, Any]:
        """Put a file back as it was before one of the agent's writes (the latest, or the named backup)."""
        choices = self.backups(session_id, path)
        if backup is not None:
            choices = [c for c in choices if c["backup"] == backup]
        if not choices:
            raise NotFound(f"no backup of {path!r} in this session")
        source = self.backup_dir / (session_id or "_") / choices[0]["backup"]
        content = source.read_text(encoding="utf-8")
        result = await self.write(path, content, session_id)
        return {**result, "restored_from": choices[0]["backup"]}


def _text_type() -> type:
    from pycrdt import Text

    return Text


def _set_text(doc: Any, content: str) -> None:
    """Replace a YUnicode's text with granular edits: only the changed span is touched."""
    ytext = doc.ydoc.get("source", type=_text_type())
    old = str(ytext)
    prefix = 0
    limit = min(len(old), len(content))
    while prefix < limit and old[prefix] == content[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == content[len(content) - 1 - suffix]:
        suffix += 1
    del ytext[prefix : len(old) - suffix]
    ytext.insert(prefix, content[prefix : len(content) - suffix])


def _atomic_write(target: Path, content: str) -> None:
    tmp = target.with_name(f".{target.name}.agent-tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, target)
