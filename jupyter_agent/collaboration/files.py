"""File reads, writes and listings inside the workspace root, through Jupyter's ContentsManager.

Every file goes through a ContentsManager: the server's own (its hidden-file rules, its storage backend, its
checkpoints and its atomic saves), or, in kernels and the CLI, Jupyter's ``AsyncFileContentsManager`` on the
root, so the same rules apply everywhere. A file that a collaborative editor has open is changed through its
shared document (granular text edits), so the people editing it see the change live and keep their own
edits. Before a write or a patch the ContentsManager makes a checkpoint ("Revert to checkpoint" in
JupyterLab), and the agent keeps its own backup per session, which :meth:`Workspace.restore` puts back.

Backups live in the agent's state directory, one file per write, named ``<stamp>~<percent-encoded path>``
(``a/b.txt`` is ``...~a%2Fb.txt``, ``a__b.txt`` is ``...~a__b.txt``); a path too long for a file name is
kept as ``<stamp>~~<sha256>`` with the path beside it in ``.<name>.path``. Names from before that
(``<stamp>--a__b.txt``) are still listed and restored, read as they were written.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from jupyter_agent.collaboration.merge import force_merge, merge_source
from jupyter_agent.errors import AgentError, BadRequest, Forbidden, NotFound, PathOutsideRoot
from jupyter_agent.security.paths import relative_to_root, resolve_in_root, write_atomically

if TYPE_CHECKING:  # shared documents (pycrdt) load only in the server, where there are any
    from jupyter_agent.collaboration.documents import DocumentProvider

MAX_READ_BYTES = 2_000_000
MAX_BACKUP_BYTES = 50_000_000  # the agent keeps a copy of every file it overwrites
MAX_LIST_ENTRIES = 500
MAX_LIST_SCANNED = 20_000  # entries looked at by one listing: a pattern matching little in a huge tree ends
MAX_BACKUP_NAME = 240  # bytes; file systems allow 255 per name

_BACKUP_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6})(~~|~|--)(.+)$")


class Workspace:
    """The files under the server root, as the agent sees them.

    ``contents`` is the ContentsManager (sync or async) files go through; None builds Jupyter's
    ``AsyncFileContentsManager`` on ``root_dir`` when a file is first touched.
    """

    def __init__(
        self,
        root_dir: Path | str,
        backup_dir: Path | str,
        documents: DocumentProvider | None = None,
        contents: Any = None,
    ) -> None:
        self.root_dir = Path(os.path.realpath(root_dir))
        self.backup_dir = Path(backup_dir)
        self.documents = documents
        self._contents = contents

    @property
    def contents(self) -> Any:
        """The ContentsManager files go through."""
        if self._contents is None:
            # Imported here, not at the top: kernels and the CLI pay for it (0.1 s after the engine's own
            # imports, 1.2 s in a bare interpreter) only when a file tool first runs.
            from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

            self._contents = AsyncFileContentsManager(root_dir=str(self.root_dir))
        return self._contents

    def resolve(self, path: str) -> Path:
        return resolve_in_root(self.root_dir, path)

    def api_path(self, target: Path) -> str:
        return relative_to_root(self.root_dir, target)

    # -- the ContentsManager ------------------------------------------------------------------------
    async def _call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a ContentsManager method (sync or async); its HTTP errors become the agent's errors."""
        from jupyter_core.utils import ensure_async

        try:
            return await ensure_async(getattr(self.contents, method)(*args, **kwargs))
        except AgentError:
            raise
        except Exception as err:
            status = getattr(err, "status_code", None)  # tornado's HTTPError, without importing tornado
            if status is None:
                raise
            reason = getattr(err, "log_message", None) or str(err)
            if status == 404:
                raise NotFound(f"no file or directory at {api!r}") from None
            if status == 403:
                raise Forbidden(f"{api!r}: {reason}") from None
            raise BadRequest(f"{api!r}: {reason}") from None

    async def _check_visible(self, api: str) -> None:
        """Refuse a hidden file or directory unless the ContentsManager serves hidden ones."""
        if getattr(self.contents, "allow_hidden", False):
            return
        hidden = any(part.startswith(".") for part in api.split("/"))
        if not hidden:
            try:
                hidden = bool(await self._call(api, "is_hidden", api))
            except NotImplementedError:
                hidden = False
        if hidden:
            raise BadRequest(
                f"{api!r} is hidden, and Jupyter here does not serve hidden files "
                "(ContentsManager.allow_hidden is off)",
                code="hidden_file",
            )

    async def _model(self, api: str) -> dict[str, Any] | None:
        """The model (without content) of what is at ``api``, or None when nothing is."""
        if await self._call(api, "file_exists", api) or await self._call(api, "dir_exists", api):
            return await self._call(api, "get", api, content=False)
        return None

    async def _checkpoint(self, api: str) -> None:
        try:
            await self._call(api, "create_checkpoint", api)
        except NotImplementedError:
            pass  # a ContentsManager without checkpoints: the agent's own backup remains

    async def _save(self, api: str, content: str | bytes) -> None:
        parts = api.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if await self._call(folder, "dir_exists", folder):
                continue
            if await self._call(folder, "file_exists", folder):
                raise BadRequest(f"{folder!r} is a file, not a directory")
            await self._call(folder, "save", {"type": "directory"}, folder)
        if isinstance(content, bytes):
            model = {"type": "file", "format": "base64", "content": base64.b64encode(content).decode("ascii")}
        else:
            model = {"type": "file", "format": "text", "content": content}
        await self._call(api, "save", model, api)

    async def _file_content(self, api: str, model: dict[str, Any], limit: int, hint: str) -> str | bytes:
        """A file's content: text when it is UTF-8, else its bytes."""
        if model["type"] == "directory":
            raise BadRequest(f"{api!r} is a directory; use file_list")
        size = model.get("size")
        if size is not None and size > limit:
            raise BadRequest(f"{api!r} is larger than {limit} bytes; {hint}")
        got = await self._call(api, "get", api, content=True, type="file")
        if got.get("format") == "base64":
            return base64.b64decode(got["content"])
        return got["content"]

    async def _current_text(self, api: str) -> tuple[str, Any]:
        """The file's text as collaborators see it now (the shared document when one is open)."""
        doc = await self.documents.open_text(api) if self.documents else None
        if doc is not None:
            return doc.source, doc
        model = await self._model(api)
        if model is None:
            raise NotFound(f"no file at {api!r}")
        content = await self._file_content(api, model, MAX_READ_BYTES, "read it in a cell instead")
        if isinstance(content, bytes):
            raise BadRequest(f"{api!r} is not a UTF-8 text file")
        return content, None

    # -- the tools' operations ----------------------------------------------------------------------
    async def read(self, path: str, offset: int | None = None, limit: int | None = None) -> dict[str, Any]:
        api = self.api_path(self.resolve(path))
        await self._check_visible(api)
        text, _ = await self._current_text(api)
        lines = text.splitlines(keepends=True)
        start = max(0, (offset or 1) - 1)
        end = len(lines) if limit is None else min(len(lines), start + max(0, limit))
        return {
            "path": api,
            "content": "".join(lines[start:end]),
            "first_line": start + 1,
            "last_line": end,
            "total_lines": len(lines),
        }

    async def write(self, path: str, content: str | bytes, session_id: str = "") -> dict[str, Any]:
        """Create or replace a file (bytes only when putting back a backup of a binary file)."""
        target = self.resolve(path)
        api = self.api_path(target)
        if target.suffix == ".ipynb":
            raise BadRequest(
                "use the notebook tools to change a notebook: rewriting the .ipynb would overwrite "
                "collaborators' edits"
            )
        await self._check_visible(api)
        model = await self._model(api)
        if model is not None and model["type"] == "directory":
            raise BadRequest(f"{path!r} is a directory")
        doc = await self.documents.open_text(api) if self.documents and model is not None else None
        size = len(content.encode() if isinstance(content, str) else content)
        if doc is not None:
            if not isinstance(content, str):
                raise BadRequest(f"{api!r} is open as text in an editor; close it to put back binary content")
            await self._checkpoint(api)
            # Nothing awaits from here to the edit: the text backed up is the text the edit applies to.
            before = doc.source
            backup = self._backup(api, before, session_id)
            with _agent_edit(doc):
                _set_text(doc, content)
            change = file_change(api, before, doc.source)
            return {"path": api, "bytes": size, "backup": backup, "live": True, "change": change}
        backup = before = None
        if model is not None:
            before = await self._file_content(api, model, MAX_BACKUP_BYTES, "change it in a cell instead")
            backup = self._backup(api, before, session_id)
            await self._checkpoint(api)
        await self._save(api, content)
        change = file_change(api, before, content)
        return {"path": api, "bytes": size, "backup": backup, "live": False, "change": change}

    async def patch(self, path: str, old: str, new: str, session_id: str = "") -> dict[str, Any]:
        if not old:
            raise BadRequest("old must be non-empty: it is the exact text to replace")
        target = self.resolve(path)
        api = self.api_path(target)
        if target.suffix == ".ipynb":
            raise BadRequest("use notebook_edit_cell to change a notebook cell")
        await self._check_visible(api)
        text, doc = await self._current_text(api)
        _locate(api, text, old)
        await self._checkpoint(api)
        if doc is not None:
            # Collaborators' edits may have arrived while the checkpoint was made: find the excerpt in the
            # text as it is now, and change it with no await in between.
            text = doc.source
            at = _locate(api, text, old)
            backup = self._backup(api, text, session_id)
            with _agent_edit(doc):
                ytext = doc.ydoc.get("source", type=_text_type())
                del ytext[at : at + len(old)]
                ytext.insert(at, new)
            after = doc.source
        else:
            at = _locate(api, text, old)
            backup = self._backup(api, text, session_id)
            after = text[:at] + new + text[at + len(old) :]
            await self._save(api, after)
        return {
            "path": api,
            "backup": backup,
            "live": doc is not None,
            "line": text.count("\n", 0, at) + 1,
            "change": file_change(api, text, after),
        }

    async def apply_text(
        self, path: str, base: str | None, new: str | None, force: bool = False
    ) -> dict[str, Any]:
        """Carry a file from ``base`` to ``new`` (None: no file) over whatever others did to it since.

        Three-way, line by line: the lines others changed are kept; where they changed the lines this change
        touches, nothing is written and the answer is a conflict with their text, unless ``force`` (then this
        change wins on those lines only). Returns ``{"status": "applied" | "unchanged" | "conflict", "theirs"}``.
        """
        api = self.api_path(self.resolve(path))
        await self._check_visible(api)
        try:
            current, doc = await self._current_text(api)
        except NotFound:
            current, doc = None, None
        if base == new or current == new:
            return {"status": "unchanged", "theirs": current}
        if new is None:
            if current != base and not force:
                return {"status": "conflict", "theirs": current}
            await self._call(api, "delete", api)
            return {"status": "applied", "theirs": current}
        if current == base or current is None or base is None:
            if current != base and not force:  # created or deleted by someone else meanwhile
                return {"status": "conflict", "theirs": current}
            merged = new
        else:
            merged = force_merge(base, current, new) if force else merge_source(base, current, new)
            if merged is None:
                return {"status": "conflict", "theirs": current}
        if doc is not None:
            with _agent_edit(doc):
                _set_text(doc, merged)
        else:
            await self._save(api, merged)
        return {"status": "applied", "theirs": current}

    async def list(
        self, path: str = ".", pattern: str | None = None, limit: int = MAX_LIST_ENTRIES
    ) -> dict[str, Any]:
        """The entries of a directory, or those under it matching a glob (``*.csv``, ``**/*.py``).

        The tree is walked lazily, in name order, and the walk ends at ``limit`` entries (or after
        ``MAX_LIST_SCANNED`` looked at): ``cut`` says which ended it, None when the list is complete.
        """
        api = self.api_path(self.resolve(path))
        await self._check_visible(api)
        model = await self._model(api)
        if model is None:
            raise BadRequest(f"{path!r} is not a directory")
        if model["type"] != "directory":
            raise BadRequest(f"{path!r} is a file, not a directory: read it with file_read")
        matches = _glob(pattern) if pattern else None
        parts = _glob_parts(pattern) if pattern else ["*"]
        depth = None if "**" in parts else len(parts)  # how deep the walk goes: no deeper than can match
        entries: list[dict[str, Any]] = []
        scanned, cut = 0, None
        start = {os.path.realpath(self.root_dir / api)}
        async with aclosing(self._walk(api, "", depth, start)) as walk:
            async for relative, entry in walk:
                if scanned == MAX_LIST_SCANNED:
                    cut = "scanned"
                    break
                scanned += 1
                if matches is not None and not matches(relative):
                    continue
                if len(entries) == limit:
                    cut = "entries"
                    break
                entries.append(entry)
        return {"path": api, "entries": entries, "cut": cut, "limit": limit, "scanned": scanned}

    async def _walk(
        self, folder: str, prefix: str, depth: int | None, seen: set[str]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Entries under ``folder`` depth first, each with its path relative to where the walk started."""
        async with aclosing(self._children(folder)) as children:
            async for entry in children:
                relative = prefix + entry["path"].rpartition("/")[2]
                yield relative, entry
                if entry["type"] != "directory" or depth == 1:
                    continue
                real = os.path.realpath(self.root_dir / entry["path"])
                if real in seen:  # a symlink back up the tree
                    continue
                seen.add(real)
                deeper = None if depth is None else depth - 1
                async with aclosing(self._walk(entry["path"], relative + "/", deeper, seen)) as below:
                    async for item in below:
                        yield item

    async def _children(self, folder: str) -> AsyncIterator[dict[str, Any]]:
        """A directory's entries in name order, as the ContentsManager would list them."""
        disk = self._disk_root()
        if disk is None:
            model = await self._call(folder, "get", folder, content=True, type="directory")
            for item in sorted(model["content"], key=lambda m: m["name"]):
                kind = "directory" if item["type"] == "directory" else "file"
                yield {
                    "path": item["path"],
                    "type": kind,
                    "size": item.get("size") if kind == "file" else None,
                }
            return
        # On disk, read only the names up front (cheap even for a huge folder); each entry is looked at when
        # the walk reaches it, with the ContentsManager's own rules (hide_globs, hidden files).
        try:
            names = sorted(os.listdir(disk / folder))
        except OSError:
            return
        for name in names:
            entry = self._disk_entry(disk / folder / name, f"{folder}/{name}" if folder else name)
            if entry is not None:
                yield entry

    def _disk_root(self) -> Path | None:
        """The root on disk when the ContentsManager keeps files there (Jupyter's file managers)."""
        from jupyter_server.services.contents.fileio import FileManagerMixin

        if isinstance(self.contents, FileManagerMixin):
            return Path(os.path.realpath(self.contents.root_dir))
        return None

    def _disk_entry(self, os_path: Path, api: str) -> dict[str, Any] | None:
        from jupyter_core.paths import is_file_hidden

        contents = self.contents
        if not contents.should_list(os_path.name):
            return None
        try:
            info = os.lstat(os_path)
            if stat.S_ISLNK(info.st_mode):
                resolve_in_root(self.root_dir, str(os_path))  # a symlink that leaves the root is not listed
                info = os.stat(os_path)
            if not contents.allow_hidden and is_file_hidden(str(os_path), stat_res=info):
                return None
        except (OSError, PathOutsideRoot):
            return None
        if stat.S_ISDIR(info.st_mode):
            return {"path": api, "type": "directory", "size": None}
        if stat.S_ISREG(info.st_mode):
            return {"path": api, "type": "file", "size": info.st_size}
        return None

    # -- backups ------------------------------------------------------------------------------------
    def _backup(self, api: str, content: str | bytes, session_id: str) -> str:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
        folder = self.backup_dir / (session_id or "_")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{stamp}~{quote(api, safe='').replace('~', '%7E')}"  # no "~": it would read as "~~"
        if len(name.encode()) > MAX_BACKUP_NAME:
            name = f"{stamp}~~{hashlib.sha256(api.encode()).hexdigest()}"
            write_atomically(folder / f".{name}.path", api.encode())
        write_atomically(folder / name, content.encode() if isinstance(content, str) else content)
        return name

    def backups(self, session_id: str, path: str | None = None) -> list[dict[str, Any]]:
        folder = self.backup_dir / (session_id or "_")
        if not folder.is_dir():
            return []
        wanted = self.api_path(self.resolve(path)) if path else None
        out = []
        for item in sorted(folder.iterdir(), reverse=True):
            found = _backed_up_path(folder, item.name)
            if found is not None and wanted in (None, found[1]):
                out.append({"backup": item.name, "path": found[1], "created": found[0]})
        return out

    async def restore(self, session_id: str, path: str, backup: str | None = None) -> dict[str, Any]:
        """Put a file back as it was before one of the agent's writes (the latest, or the named backup)."""
        choices = self.backups(session_id, path)
        if backup is not None:
            choices = [c for c in choices if c["backup"] == backup]
        if not choices:
            raise NotFound(f"no backup of {path!r} in this session")
        data = (self.backup_dir / (session_id or "_") / choices[0]["backup"]).read_bytes()
        try:
            content: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            content = data
        result = await self.write(path, content, session_id)
        return {**result, "restored_from": choices[0]["backup"]}


#: The largest text a turn's change record keeps (before and after): bigger files are reverted from backups.
MAX_RECORDED_TEXT = 5_000_000


def file_change(api: str, before: str | bytes | None, after: str | bytes) -> dict[str, Any]:
    """One change of a file, as a turn records it for review and undo (text only, up to a size)."""
    change: dict[str, Any] = {"target": "file", "op": "create" if before is None else "write", "path": api}
    texts = [t for t in (before, after) if t is not None]
    if any(isinstance(t, bytes) or len(t) > MAX_RECORDED_TEXT for t in texts):
        return {**change, "before": None, "after": None, "unrecorded": True}
    return {**change, "before": before, "after": after}


def _locate(api: str, text: str, old: str) -> int:
    """Where the one occurrence of ``old`` starts in ``text``; an error the model can act on otherwise."""
    count = text.count(old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise BadRequest(f"the text to replace {where} in {api!r}; give an exact, unique excerpt")
    return text.index(old)


def _backed_up_path(folder: Path, name: str) -> tuple[str, str] | None:
    """(stamp, API path) of a backup file's name, or None for anything else in the folder."""
    found = _BACKUP_NAME.match(name)
    if found is None:
        return None  # temporary files and the long paths' notes start with a dot
    stamp, kind, rest = found.groups()
    if kind == "~":
        return stamp, unquote(rest)
    if kind == "~~":
        try:
            return stamp, (folder / f".{name}.path").read_text(encoding="utf-8")
        except OSError:
            return None
    return stamp, rest.replace("__", "/")  # named before paths were encoded: read as it was written


def _glob(pattern: str) -> Callable[[str], bool]:
    """A matcher of relative POSIX paths for a glob: ``*``, ``?`` and ``[...]`` within a name, ``**`` for
    any number of folders (as ``Path.glob`` reads it)."""
    parts = _glob_parts(pattern)
    return lambda relative: _matches(parts, relative.split("/"))


def _glob_parts(pattern: str) -> list[str]:
    return [part for part in pattern.split("/") if part not in ("", ".")]


def _matches(parts: list[str], names: list[str]) -> bool:
    if not parts:
        return not names
    if parts[0] == "**":
        return any(_matches(parts[1:], names[skip:]) for skip in range(len(names) + 1))
    return bool(names) and fnmatchcase(names[0], parts[0]) and _matches(parts[1:], names[1:])


def _agent_edit(doc: Any) -> Any:
    """The agent's transaction on a shared document (imported here: only the server has shared documents)."""
    from jupyter_agent.collaboration.documents import agent_transaction

    return agent_transaction(doc)


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
