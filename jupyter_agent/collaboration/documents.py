"""Access to the live shared documents that every collaborator sees.

In the server, documents come from jupyter_server_ydoc's public ``get_document(..., copy=False)``: the very
YNotebook / YUnicode that JupyterLab clients are synchronised with, so an edit made here appears in every
open editor at once and is saved by the room. Outside the server (CLI, kernels) a file-backed provider
loads the document into a private Y document and writes it back after each edit.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import nbformat
from jupyter_ydoc import YNotebook, YUnicode

from jupyter_agent.errors import BadRequest, NotFound, ToolError
from jupyter_agent.security.paths import relative_to_root, resolve_in_root, write_atomically

#: The origin of every transaction the agent makes, so observers can tell its edits apart.
AGENT_ORIGIN = "jupyter_agent"

#: How the agent appears in a document's collaborator list (JupyterLab reads the awareness "user" field).
AGENT_USER = {
    "username": "jupyter-agent",
    "name": "Jupyter Agent",
    "display_name": "Jupyter Agent",
    "initials": "AI",
    "color": "#7c3aed",
    "avatar_url": None,
}


def announce_agent(doc: Any) -> None:
    """Show the agent among the document's collaborators, with its own name and colour."""
    awareness = getattr(doc, "awareness", None)
    if awareness is None:
        return
    state = awareness.get_local_state() or {}
    if state.get("user", {}).get("username") != AGENT_USER["username"]:
        awareness.set_local_state({**state, "user": AGENT_USER})


class DocumentProvider(Protocol):
    root_dir: Path

    async def notebook(self, path: str) -> YNotebook:
        """The live notebook at ``path`` (relative to the root), loading it if needed."""

    async def open_text(self, path: str) -> YUnicode | None:
        """The live text document at ``path`` if a collaborative editor has it open, else None."""

    async def saved(self, path: str) -> None:
        """Called after each edit: providers that own the file write it back."""


@contextmanager
def agent_transaction(doc: YNotebook | YUnicode):
    """One transaction with the agent's origin: observers see the edit as one change."""
    with doc.ydoc.transaction(origin=AGENT_ORIGIN) as txn:
        yield txn


def _check_notebook_path(root: Path, path: str) -> Path:
    target = resolve_in_root(root, path)
    if target.suffix != ".ipynb":
        raise BadRequest(
            f"{path!r} is not a notebook (.ipynb): read it with file_read, or load a data file in a code cell "
            "(e.g. pandas.read_csv)"
        )
    if not target.is_file():
        raise NotFound(
            f"no notebook at {path!r}; create it first (file_write with an empty notebook) or check the path"
        )
    return target


class YDocProvider:
    """Documents from the server's collaboration rooms (jupyter_server_ydoc)."""

    def __init__(self, settings: dict[str, Any], root_dir: Path) -> None:
        self._settings = settings  # the server's settings: the ydoc extension registers itself there on load
        self.root_dir = Path(os.path.realpath(root_dir))

    @property
    def _ydoc(self) -> Any:
        ext = self._settings.get("jupyter_server_ydoc")
        if ext is None:
            raise ToolError("real-time collaboration (jupyter-collaboration) is not enabled on this server")
        return ext

    async def notebook(self, path: str) -> YNotebook:
        target = _check_notebook_path(self.root_dir, path)
        api = relative_to_root(self.root_dir, target)
        doc = await self._ydoc.get_document(
            path=api, content_type="notebook", file_format="json", copy=False, create=True
        )
        if doc is None:
            raise NotFound(f"could not open the shared notebook {api!r}")
        announce_agent(doc)
        return doc

    async def open_text(self, path: str) -> YUnicode | None:
        target = resolve_in_root(self.root_dir, path)
        if not target.is_file():
            return None
        api = relative_to_root(self.root_dir, target)
        doc = await self._ydoc.get_document(
            path=api, content_type="file", file_format="text", copy=False, create=False
        )
        if not isinstance(doc, YUnicode):
            return None
        announce_agent(doc)
        return doc

    async def saved(self, path: str) -> None:
        """The room saves by itself after every change (document_save_delay)."""


class FileProvider:
    """Documents loaded from disk into private Y documents, written back after each edit.

    For the CLI and the kernel, where no collaboration server runs. One instance per process; edits from
    other programs to the same file while it is open here are not merged.
    """

    def __init__(self, root_dir: Path) -> None:
        self.root_dir = Path(os.path.realpath(root_dir))
        self._notebooks: dict[Path, YNotebook] = {}
        self._lock = asyncio.Lock()

    async def notebook(self, path: str) -> YNotebook:
        target = _check_notebook_path(self.root_dir, path)
        doc = self._notebooks.get(target)
        if doc is None:
            nb = nbformat.read(target, as_version=4)
            doc = YNotebook()
            doc.set(nb)
            self._notebooks[target] = doc
        return doc

    async def open_text(self, path: str) -> YUnicode | None:
        return None

    async def saved(self, path: str) -> None:
        target = resolve_in_root(self.root_dir, path)
        doc = self._notebooks.get(target)
        if doc is None:
            return
        async with self._lock:
            content = doc.get()
            text = json.dumps(content, indent=1, ensure_ascii=False) + "\n"
            write_atomically(target, text.encode("utf-8"))
