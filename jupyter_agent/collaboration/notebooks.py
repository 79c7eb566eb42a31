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
from html.parser import HTMLParser
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Map, Text

from jupyter_agent.collaboration.documents import DocumentProvider, agent_transaction
from jupyter_agent.collaboration.merge import merge_source
from jupyter_agent.errors import BadRequest, NotFound, ToolError

CELL_TYPES = ("code", "markdown", "raw")
LINE_TOKENS = re.compile(r"(\r\n|\n|\r)")  # split keeping the breaks: "a\nb" -> ["a", "\n", "b"]


def find_cell(nb: YNotebook, cell_id: str) -> int:
    """The index of the cell with this id (ids are stable; indexes move as people edit)."""
    for index, ycell in enumerate(nb.ycells):
        if ycell.get("id") == cell_id:
            return index
    ids = ", ".join(str(c.get("id")) for c in nb.ycells)
    hint = ""
    if cell_id.isdigit() and int(cell_id) < len(nb.ycells):  # an index given for an id (small models do)
        hint = f" (cell_id is the id, not the index: the cell at index {cell_id} has id {nb.ycells[int(cell_id)].get('id')})"
    raise NotFound(f"no cell with id {cell_id!r}{hint}; the notebook's cell ids are: {ids}")


def notebook_kernel_name(nb: YNotebook) -> str | None:
    """The kernelspec name the notebook asks for, if any."""
    meta = nb.ydoc.get("meta", type=Map).to_py() or {}
    return ((meta.get("metadata") or {}).get("kernelspec") or {}).get("name")


def output_text(output: dict[str, Any], limit: int = 2000) -> str:
    """A short text form of one output, as the model reads it (a table's text/plain, never its HTML)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = str(output.get("text", ""))
    elif kind == "error":
        text = f"{output.get('ename')}: {output.get('evalue')}"
    else:
        data = output.get("data") or {}
        images = [m for m in data if m.startswith("image/")]
        text = rich_text(data)
        if images:
            text = (text + "\n" if text else "") + f"[{images[0]} output]"
    return text if len(text) <= limit else text[:limit] + " [...]"


def rich_text(data: dict[str, Any]) -> str:
    """The text of a rich output's bundle: its text/plain (a DataFrame's is its table as text), else its
    Markdown, else its HTML's text with the markup dropped (rows on lines, cells apart)."""
    for mime in ("text/plain", "text/markdown"):
        if data.get(mime):
            return str(data[mime])
    if data.get("text/html"):
        reader = _HTMLText()
        reader.feed(str(data["text/html"]))
        reader.close()
        return reader.text()
    return ""


class _HTMLText(HTMLParser):
    """Collects the visible text of HTML: block elements and table rows end lines, cells are tab-apart."""

    BREAKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "thead"}
    SKIPPED = {"style", "script"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, _attrs: Any) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = ("".join(self.parts)).split("\n")
        return "\n".join(re.sub(r" ?\t ?", "\t", line).strip("\t ") for line in lines if line.strip())


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
        self,
        path: str,
        source: str,
        cell_type: str = "code",
        index: int | None = None,
        pending: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Insert a cell; ``pending`` (``{"session", "turn"}``, review mode) marks it for a person's review.

        The result's ``change`` is what the turn's review and undo record (see collaboration.review).
        """
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
            mark_pending(nb.ycells[index], "insert", pending)
        change = cell_change("insert", path, cell["id"], None, cell_state(nb, index), pending)
        self._seen[(path, cell["id"])] = source
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell["id"], "index": index, "change": change}

    async def edit_cell(
        self, path: str, cell_id: str, source: str, pending: dict[str, Any] | None = None
    ) -> dict[str, Any]:
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
        before = cell_state(nb, index)
        with agent_transaction(nb):
            replace_lines(nb.ycells[index]["source"], source if merged is None else merged)
            mark_pending(nb.ycells[index], "edit", pending)
        change = cell_change("edit", path, cell_id, before, cell_state(nb, index), pending)
        # What the agent knows is the source it wrote, not the merge (it has not seen the other person's
        # changes): its next edit, written from that, is merged again and keeps those changes.
        self._seen[(path, cell_id)] = source
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell_id, "index": index, "change": change}

    async def delete_cell(
        self, path: str, cell_id: str, pending: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Delete a cell; in review mode (``pending``) the cell stays, marked for deletion, until accepted."""
        nb = await self.documents.notebook(path)
        index = find_cell(nb, cell_id)
        before = cell_state(nb, index)
        with agent_transaction(nb):
            if pending is None:
                del nb.ycells[index]
            else:
                mark_pending(nb.ycells[index], "delete", pending)
        change = cell_change("delete", path, cell_id, before, None, pending)
        self._seen.pop((path, cell_id), None)
        await self.documents.saved(path)
        return {
            "path": path,
            "cell_id": cell_id,
            "index": index,
            "pending": pending is not None,
            "change": change,
        }


#: The cell metadata key of the agent's pending edits (review mode): ``{"pending": "insert" | "edit" |
#: "delete", "session": ..., "turn": ...}``. Every collaborator sees it; accept or reject removes it.
PENDING_KEY = "jupyter_agent"


def mark_pending(ycell: Map, kind: str, pending: dict[str, Any] | None) -> None:
    """Mark a cell as the agent's pending ``kind`` of edit (inside a transaction); nothing when not reviewing.

    An inserted cell stays an insert when edited later in the turn, and a deletion wins over an edit.
    """
    if pending is None:
        return
    metadata = ycell["metadata"]
    previous = (metadata.get(PENDING_KEY) or {}) if isinstance(metadata, Map) else {}
    if previous.get("pending") == "insert" and kind == "edit":
        kind = "insert"
    metadata[PENDING_KEY] = {"pending": kind, "session": pending["session"], "turn": pending["turn"]}


def cell_state(nb: YNotebook, index: int) -> dict[str, Any]:
    """A cell as a turn's change record keeps it: the cell (without the review marker), its place and its
    neighbours' ids (where to put it back if it is deleted meanwhile)."""
    cell = nb.ycells[index].to_py() or {}
    metadata = dict(cell.get("metadata") or {})
    metadata.pop(PENDING_KEY, None)
    cell["metadata"] = metadata
    cell.pop("execution_state", None)
    count = len(nb.ycells)
    return {
        "cell": cell,
        "index": index,
        "prev": nb.ycells[index - 1].get("id") if index > 0 else None,
        "next": nb.ycells[index + 1].get("id") if index + 1 < count else None,
    }


def cell_change(
    op: str,
    path: str,
    cell_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    pending: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One change of a cell, as a turn records it."""
    cell_type = ((after or before or {}).get("cell") or {}).get("cell_type")
    return {
        "target": "cell",
        "op": op,
        "path": path,
        "cell_id": cell_id,
        "cell_type": cell_type,
        "before": before,
        "after": after,
        "pending": pending is not None,
    }


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
