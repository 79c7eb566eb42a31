"""What review and undo cost on a 2,000-cell notebook: recording a turn's changes, reading them, undoing it.

In this process (the library, no server), on a live YNotebook of ``--cells`` cells:

- an agent edit with its change record (``NotebookEditor.edit_cell``, which reads the cell before and after)
  against the same edit's bare CRDT transaction;
- ``TurnReview.changes`` (targets, diffs, state) of a turn of ``--changes`` edits and inserts;
- undoing that turn (one transaction on the notebook) and redoing it.

Against a real Jupyter server (subprocess, scripted model, real HTTP and WebSockets), on a notebook of the
same size: ``--turns`` turns that each edit a cell and insert one, then per turn the round trip of
``GET .../turns/{turn}/changes`` and of ``POST .../turns/{turn}/undo``, until the notebook on disk is back.

    .venv/bin/python benchmarks/review.py --cells 2000 --changes 20 --turns 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_agent.collaboration.notebooks import NotebookEditor, replace_lines
from jupyter_agent.collaboration.review import TurnReview
from jupyter_agent.store import Store
from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec


def percentiles(name: str, values: list[float]) -> None:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    print(
        f"{name:<46} n={len(values):<4} p50 {statistics.median(values):8.2f} ms  p90 {p90:8.2f} ms  max {values[-1]:8.2f} ms"
    )


def notebook(cells: int) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": f"# cell {i}\nx_{i} = {i}\nprint(x_{i} * 2)\n",
            }
            for i in range(cells)
        ],
    }


class InMemory:
    """A document provider holding one live notebook in memory (what the server's rooms hold)."""

    def __init__(self, cells: int) -> None:
        from jupyter_ydoc import YNotebook

        self.root_dir = Path(tempfile.gettempdir())
        self.doc = YNotebook()
        self.doc.set(notebook(cells))

    async def notebook(self, path: str) -> Any:
        return self.doc

    async def open_text(self, path: str) -> None:
        return None

    async def saved(self, path: str) -> None:
        return None


async def in_process(cells: int, changes: int, rounds: int) -> None:
    print(f"-- in process: a live notebook of {cells} cells")
    docs = InMemory(cells)
    editor = NotebookEditor(docs)
    bare, recorded, reads, undos, redos = [], [], [], [], []
    for round_ in range(rounds):
        store = Store(":memory:")
        review = TurnReview(store, {"notebooks": editor})
        turn = f"t{round_}"
        for i in range(changes // 2):
            cell = f"c{(i * 97 + round_) % cells}"
            start = time.perf_counter()
            with docs.doc.ydoc.transaction():
                index = next(n for n, c in enumerate(docs.doc.ycells) if c.get("id") == cell)
                replace_lines(
                    docs.doc.ycells[index]["source"], str(docs.doc.ycells[index]["source"]) + "# bare\n"
                )
            bare.append((time.perf_counter() - start) * 1000)
            source = str(docs.doc.ycells[index]["source"]) + f"# agent {round_}\n"
            start = time.perf_counter()
            done = await editor.edit_cell("nb.ipynb", cell, source)
            review.record("s", turn, done["change"])
            recorded.append((time.perf_counter() - start) * 1000)
            done = await editor.insert_cell("nb.ipynb", f"new_{i} = {i}\n", index=(i * 131) % cells)
            review.record("s", turn, done["change"])
        start = time.perf_counter()
        listed = review.changes("s", turn)
        reads.append((time.perf_counter() - start) * 1000)
        assert len(listed["targets"]) == changes - changes % 2
        start = time.perf_counter()
        undone = await review.undo("s", turn)
        undos.append((time.perf_counter() - start) * 1000)
        assert not undone["conflicts"] and len(undone["reverted"]) == len(listed["targets"])
        start = time.perf_counter()
        await review.redo("s", turn)
        redos.append((time.perf_counter() - start) * 1000)
        await review.undo("s", turn)
        store.close()
    percentiles("edit: bare CRDT transaction (find + replace)", bare)
    percentiles("edit: NotebookEditor.edit_cell + change record", recorded)
    percentiles(f"changes of a turn ({changes} changes, diffs)", reads)
    percentiles(f"undo of a turn ({changes} changes)", undos)
    percentiles(f"redo of a turn ({changes} changes)", redos)


def server(cells: int, turns: int) -> None:
    print(f"-- a Jupyter server: a notebook of {cells} cells, {turns} turns (each: an edit and an insert)")
    llm = ScriptedLLM().start()
    try:
        with JupyterServer(llm_base_url=llm.base_url) as srv:
            (srv.root / "big.ipynb").write_text(json.dumps(notebook(cells)))
            sid = srv.api("POST", "api/agent/sessions", {"title": "bench"})["id"]
            import websocket

            ws = websocket.create_connection(
                f"ws://127.0.0.1:{srv.port}/api/agent/sessions/{sid}/ws?token={srv.token}", timeout=120
            )
            json.loads(ws.recv())
            ids = []
            for i in range(turns):
                cell = f"c{(i * 137) % cells}"
                llm.script(
                    Reply(
                        tool_calls=[
                            ToolCallSpec(
                                "notebook_edit_cell",
                                {"path": "big.ipynb", "cell_id": cell, "source": f"y = {i}\n"},
                            )
                        ]
                    ),
                    Reply(
                        tool_calls=[
                            ToolCallSpec(
                                "notebook_insert_cell",
                                {"path": "big.ipynb", "source": f"z = {i}", "index": i},
                            )
                        ]
                    ),
                    Reply(text="done"),
                )
                ws.send(
                    json.dumps({"type": "prompt", "text": f"turn {i}", "context": {"notebook": "big.ipynb"}})
                )
                while True:
                    frame = json.loads(ws.recv())
                    if frame.get("type") in ("done", "error") and "seq" in frame:
                        assert frame["type"] == "done", frame
                        ids.append(frame["turn"])
                        break
            ws.close()
            reads, undos = [], []
            for turn in reversed(ids):
                start = time.perf_counter()
                srv.api("GET", f"api/agent/sessions/{sid}/turns/{turn}/changes")
                reads.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                undone = srv.api("POST", f"api/agent/sessions/{sid}/turns/{turn}/undo", {})
                undos.append((time.perf_counter() - start) * 1000)
                assert undone["state"] == "undone" and not undone["conflicts"], undone
            deadline = time.monotonic() + 30
            original = [c["source"] for c in notebook(cells)["cells"]]
            while time.monotonic() < deadline:
                saved = json.loads((srv.root / "big.ipynb").read_text())
                if ["".join(c["source"]) for c in saved["cells"]] == original:
                    break
                time.sleep(0.1)
            else:
                raise SystemExit("the notebook on disk did not come back to its first state")
            percentiles("GET .../turns/{turn}/changes (REST round trip)", reads)
            percentiles("POST .../turns/{turn}/undo (REST round trip)", undos)
            print("notebook on disk back to its first state: yes")
    finally:
        llm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=20, help="changes per turn in the in-process part")
    parser.add_argument("--rounds", type=int, default=10, help="turns measured in the in-process part")
    parser.add_argument("--turns", type=int, default=10, help="turns measured against the server")
    parser.add_argument("--no-server", action="store_true", help="the in-process part only")
    args = parser.parse_args()
    asyncio.run(in_process(args.cells, args.changes, args.rounds))
    if not args.no_server:
        server(args.cells, args.turns)


if __name__ == "__main__":
    main()
