"""Notebook edits on the live shared document: read, insert, edit and delete cells by id.

Each edit is one transaction on the YNotebook with the agent's origin. Sources are changed in place with
granular text edits (``set_cell(source=...)``), never by replacing the cell, so a collaborator's cursor and
their concurrent edits elsewhere survive.
"""

from __future__ import annotations

import uuid
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Map

from jupyter_agent.collaboration.documents import DocumentProvider, agent_transaction
from jupyter_agent.errors import BadRequest, NotFound

CELL_TYPES = ("code", "markdown", "raw")


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


class NotebookEditor:
    """Cell-level operations on live notebooks, by path and cell id."""

    def __init__(self, documents: DocumentProvider) -> None:
        self.documents = documents

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
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell["id"], "index": index}

    async def edit_cell(self, path: str, cell_id: str, source: str) -> dict[str, Any]:
        nb = await self.documents.notebook(path)
        index = find_cell(nb, cell_id)
        with agent_transaction(nb):
            nb.set_cell(index, source=source)
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell_id, "index": index}

    async def delete_cell(self, path: str, cell_id: str) -> dict[str, Any]:
        nb = await self.documents.notebook(path)
        index = find_cell(nb, cell_id)
        with agent_transaction(nb):
            del nb.ycells[index]
        await self.documents.saved(path)
        return {"path": path, "cell_id": cell_id, "index": index}


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
