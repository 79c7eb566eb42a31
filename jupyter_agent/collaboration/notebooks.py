"""Notebook edits on the live shared document: read, insert, edit and delete cells by id.

Each edit is one transaction on the YNotebook with the agent's origin. Sources are changed in place, line by
line (only the lines that differ are replaced), never by replacing the cell, so a collaborator's cursor and
their concurrent edits elsewhere survive, and the agent's new text is inserted whole: a character diff would
reuse characters of the old text that happen to match (a line added above ``# x`` could be written as the
insertion of ``...\n# `` after the old ``# ``), and whoever deleted those characters at the same time would
cut the agent's new text.

An edit gives the cell's whole new source, written from the source the agent last saw (read, inserted or
edited). When a person has changed the cell since, only the agent's changes to what it saw are applied to
the live text (a three-way merge), so the person's typing elsewhere in the cell is kept; if both changed the
same text the edit is refused with the cell's current source, so the agent can read it and try again.
"""

from __future__ import annotations

import re
import uuid
from difflib import SequenceMatcher
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Map, Text

from jupyter_agent.collaboration.documents import DocumentProvider, agent_transaction
from jupyter_agent.errors import BadRequest, NotFound, ToolError

CELL_TYPES = ("code", "markdown", "raw")
LINE_TOKENS = re.compile(r"(\r\n|\n|\r)")  # split keeping the breaks: "a\nb" -> ["a", "\n", "b"]


def find_cell(nb: YNotebook, cell_id: str) -> int:
    """The index of the cell with this id (ids are stable; indexes move as people edit)."""
    for index, ycell in enumerate(nb.ycells):
        if ycell.get("id") == cell_id:
            return index
    ids = ", ".join(str(c.get("id")) for c in nb.ycells)
    raise NotFound(f"no cell with id {cell_id!r}; the notebook's cell ids are: {ids}")


def notebook_kernel_name(nb: YNotebook) -> str | None:
    """The kernelspec name the notebook asks for, if any."""
    meta = nb.ydoc.get("meta", type=Map).to_py() or {}
    return ((meta.get("metadata") or {}).get("kernelspec") or {}).get("name")


def output_text(output: dict[str, Any], limit: int = 2000) -> str:
    """A short text form of one output, as the model reads it."""
    kind = output.get("output_type")
    if kind == "stream":
        text = str(output.get("text", ""))
    elif kind == "error":
        text = f"{output.get('ename')}: {output.get('evalue')}"
    else:
        data = output.get("data") or {}
        images = [m for m in data if m.startswith("image/")]
        text = str(data.get("text/plain", ""))
        if images:
            text = (text + "\n" if text else "") + f"[{images[0]} output]"
    return text if len(text) <= limit else text[:limit] + " [...]"


def merge_source(base: str, current: str, new: str) -> str | None:
    """Apply the changes from ``base`` to ``new`` onto ``current`` (which others changed from ``base``).

    Line by line, as ``git merge`` does: None when the agent changed a line that was changed in ``current``.
    """
    old_lines, live, wanted = (s.splitlines(keepends=True) for s in (base, current, new))
    blocks = SequenceMatcher(None, old_lines, live, autojunk=False).get_matching_blocks()

    def unchanged(i1: int, i2: int) -> int | None:
        # Where lines i1:i2 of base are in current, if nobody else changed them (or where to insert, if i1 == i2).
        for a, b, size in blocks:
            if a <= i1 and i2 <= a + size and (size or i1 == i2 == a):
                return b + (i1 - a)
        return None

    edits = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old_lines, wanted, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        at = unchanged(i1, i2)
        if at is None:
            return None
        edits.append((at, at + (i2 - i1), wanted[j1:j2]))
    for start, end, lines in reversed(edits):
        live[start:end] = lines
    return "".join(live)


def replace_lines(ytext: Text, new: str) -> None:
    """Change ``ytext`` to ``new`` by replacing only the lines that differ (call inside a transaction).

    Line contents and line breaks are separate tokens, so adding a line after the last one (which has no
    line break) inserts a break and the new line instead of rewriting the old last line.
    """
    old = str(ytext)
    if old == new:
        return
    old_tokens, new_tokens = LINE_TOKENS.split(old), LINE_TOKENS.split(new)
    starts = [0]  # the UTF-8 byte offset of each old token: pycrdt's Text indexes bytes
    for token in old_tokens:
        starts.append(starts[-1] + len(token.encode("utf-8")))
    opcodes = SequenceMatcher(None, old_tokens, new_tokens, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(opcodes):  # from the end, so earlier offsets stay valid
        if tag == "equal":
            continue
        if starts[i2] > starts[i1]:
            del ytext[starts[i1] : starts[i2]]
        if text := "".join(new_tokens[j1:j2]):
            ytext.insert(starts[i1], text)


class NotebookEditor:
    """Cell-level operations on live notebooks, by path and cell id."""

    def __init__(self, documents: DocumentProvider) -> None:
        self.documents = documents
        self._seen: dict[tuple[str, str], str] = {}  # (path, cell id) -> the source the agent last saw

    async def read(self, path: str) -> dict[str, Any]:
        nb = await self.documents.notebook(path)
        cells = []
        for index, ycell in enumerate(nb.ycells):
            cell = ycell.to_py() or {}
            entry: dict[str, Any] = {
                "index": index,
                "id": cell.get("id"),
                "cell_type": cell.get("cell_type"),
                "source": cell.get("source", ""),
            }
            if cell.get("cell_type") == "code":
                entry["execution_count"] = _int_or_none(cell.get("execution_count"))
                entry["outputs"] = [output_text(o) for o in cell.get("outputs") or []]
            cells.append(entry)
            self._seen[(path, str(entry["id"]))] = str(entry["source"])
        kernel = notebook_kernel_name(nb)
        return {"path": path, "kernel": kernel, "cells": cells}

    async def insert_cell(
        self, path: str, source: str, cell_type: str = "code", index: int | None = None
    ) -> dict[str, Any]:
        if cell_type not in CELL_TYPES:
            raise BadRequest(f"cell_type must be one of {', '.join(CELL_TYPES)}")
        nb = await self.documents.notebook(path)
        count = len(nb.ycells)
        if index is None or index > count:
            index = count
        if index < 0:
            index = max(0, count + index + 1)
        cell: dict[str, Any] = {
            "id": uuid.uuid4().hex[:8],
            "cell_type": cell_type,
            "source": source,
            "metadata": {},
        }
        if cell_type == "code":
            cell.update(outputs=[], execution_count=None)
        with agent_transaction(nb):
            nb.ycells.insert(index, nb.create_ycell(cell))
        self._seen[(path, cell["id"])] = source
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell["id"], "index": index}

    async def edit_cell(self, path: str, cell_id: str, source: str) -> dict[str, Any]:
        nb = await self.documents.notebook(path)
        index = find_cell(nb, cell_id)
        current = str(nb.ycells[index]["source"])
        base = self._seen.get((path, cell_id))
        merged = None
        if base is not None and base != current:
            merged = merge_source(base, current, source)
            if merged is None:
                self._seen[(path, cell_id)] = current
                raise ToolError(
                    f"cell {cell_id} was changed by someone else where you edited it; it is now:\n{current}\n"
                    "Edit it again, starting from this source."
                )
        with agent_transaction(nb):
            replace_lines(nb.ycells[index]["source"], source if merged is None else merged)
        # What the agent knows is the source it wrote, not the merge (it has not seen the other person's
        # changes): its next edit, written from that, is merged again and keeps those changes.
        self._seen[(path, cell_id)] = source
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell_id, "index": index}

    async def delete_cell(self, path: str, cell_id: str) -> dict[str, Any]:
        nb = await self.documents.notebook(path)
        index = find_cell(nb, cell_id)
        with agent_transaction(nb):
            del nb.ycells[index]
        self._seen.pop((path, cell_id), None)
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell_id, "index": index}


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
