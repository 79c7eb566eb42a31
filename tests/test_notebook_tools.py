"""Every notebook tool, observed by a second person in the same live notebook and on disk after save."""

from __future__ import annotations

import nbformat
import pytest
from jupyter_ydoc import YNotebook

from jupyter_agent.collaboration.notebooks import find_cell
from jupyter_agent.errors import NotFound
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import wait_for
from tests.test_notebook_live import read_disk

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def write_notebook(root, cells, name="t.ipynb"):
    """``cells``: (id, cell_type, source) or (id, cell_type, source, attachments)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for cell_id, kind, source, *attachments in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell.id = cell_id
        if attachments:
            cell.attachments = attachments[0]
        nb.cells.append(cell)
    nbformat.write(nb, root / name)
    return name


def cells_of(doc):
    return [(str(c["id"]), str(c["cell_type"]), str(c["source"])) for c in doc.ycells]


def disk_cells(root, path):
    disk = read_disk(root / path)
    if not disk:
        return None
    return [(c["id"], c["cell_type"], "".join(c["source"])) for c in disk["cells"]]


async def disk_shows(root, path, expected):
    """Wait until the saved notebook has exactly these (id, type, source) cells; return its JSON."""
    await wait_for(lambda: disk_cells(root, path) == expected, what=f"{path} on disk")
    return read_disk(root / path)


def tool_results(frames):
    assert frames[-1]["type"] == "done", frames[-1]
    return [f for f in frames if f["type"] == "tool_result"]


def call(name, **args):
    return Reply(tool_calls=[ToolCallSpec(name, args)])


async def test_edit_cell_keeps_a_persons_typing_elsewhere_in_the_same_cell(agent, llm, jp_root_dir, collab):
    path = write_notebook(jp_root_dir, [("human0", "code", "a = 1\nb = 2\nc = 3")])
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        # The agent reads the cell ...
        llm.script(call("notebook_read", path=path), Reply(text="read"))
        assert tool_results(await ws.turn("look", context={"notebook": path}))[0]["ok"]
        # ... then the person types at the start and at the end of that cell ...
        source = doc.ycells[0]["source"]
        with doc.ydoc.transaction():
            source.insert(0, "# a person's note\n")
        source += "\nd = 4  # typed by a person"
        typed = "# a person's note\na = 1\nb = 2\nc = 3\nd = 4  # typed by a person"
        await disk_shows(jp_root_dir, path, [("human0", "code", typed)])
        # ... and the agent changes line b of the source it read.
        llm.script(
            call("notebook_edit_cell", path=path, cell_id="human0", source="a = 1\nb = 20\nc = 3"),
            Reply(text="done"),
        )
        assert tool_results(await ws.turn("set b to 20", context={"notebook": path}))[0]["ok"]
        expected = "# a person's note\na = 1\nb = 20\nc = 3\nd = 4  # typed by a person"
        await wait_for(
            lambda: str(doc.ycells[0]["source"]) == expected, what="both edits in the person's view"
        )
    await disk_shows(jp_root_dir, path, [("human0", "code", expected)])


async def test_edit_cell_of_a_line_a_person_changed_meanwhile_is_refused_not_lost(
    agent, llm, jp_root_dir, collab
):
    path = write_notebook(jp_root_dir, [("human0", "code", "a = 1\nb = 2")])
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        llm.script(call("notebook_read", path=path), Reply(text="read"))
        assert tool_results(await ws.turn("look", context={"notebook": path}))[0]["ok"]
        source = doc.ycells[0]["source"]
        source.insert(len(str(source)), "  # the person's b")
        person = "a = 1\nb = 2  # the person's b"
        await disk_shows(jp_root_dir, path, [("human0", "code", person)])
        llm.script(
            call("notebook_edit_cell", path=path, cell_id="human0", source="a = 1\nb = 20"),
            Reply(text="done"),
        )
        result = tool_results(await ws.turn("set b to 20", context={"notebook": path}))[0]
        # The agent is told the cell changed and shown its current source; the person's line stays.
        assert not result["ok"]
        assert "changed by someone else" in result["content"] and person in result["content"]
        assert cells_of(doc) == [("human0", "code", person)]
    await disk_shows(jp_root_dir, path, [("human0", "code", person)])


async def test_delete_cell_a_person_is_typing_in_takes_their_text_and_nothing_else(
    agent, llm, jp_root_dir, collab
):
    cells = [("human0", "code", "x = 1"), ("human1", "code", "y = 2"), ("human2", "markdown", "# z")]
    path = write_notebook(jp_root_dir, cells)
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 3, what="initial sync")
        typing = doc.ycells[1]["source"]
        typing += "  # a person is typing here"
        await disk_shows(
            jp_root_dir, path, [cells[0], ("human1", "code", "y = 2  # a person is typing here"), cells[2]]
        )
        llm.script(call("notebook_delete_cell", path=path, cell_id="human1"), Reply(text="deleted"))
        ws_turn = ws.turn("delete the y cell", context={"notebook": path})
        # The delete is not refused: the cell goes, with the person's text in it.
        result = tool_results(await ws_turn)[0]
        assert result["ok"], result
        await wait_for(lambda: len(doc.ycells) == 2, what="the delete in the person's view")
        # A keystroke the person makes into the deleted cell's text after the delete is gone with it.
        assert cells_of(doc) == [cells[0], cells[2]]
    await disk_shows(jp_root_dir, path, [cells[0], cells[2]])


async def test_a_person_moving_a_cell_while_the_agent_edits_cells_by_id(agent, llm, jp_root_dir, collab):
    from jupyter_agent.tools.notebook import NOTEBOOK_TOOLS

    assert not any("move" in t.name for t in NOTEBOOK_TOOLS)  # no move tool: the person moves cells
    cells = [("c0", "code", "first = 0"), ("c1", "code", "second = 1"), ("c2", "code", "third = 2")]
    path = write_notebook(jp_root_dir, cells)
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 3, what="initial sync")
        # JupyterLab moves a cell by deleting it and inserting a copy (same id) elsewhere.
        with doc.ydoc.transaction():
            moved = doc.ycells[2].to_py()
            del doc.ycells[2]
            doc.ycells.insert(0, doc.create_ycell(moved))
        moved_order = [cells[2], cells[0], cells[1]]
        await disk_shows(jp_root_dir, path, moved_order)
        llm.script(
            Reply(
                tool_calls=[
                    ToolCallSpec(
                        "notebook_edit_cell", {"path": path, "cell_id": "c2", "source": "third = 3"}
                    ),
                    ToolCallSpec(
                        "notebook_edit_cell", {"path": path, "cell_id": "c1", "source": "second = 2"}
                    ),
                ]
            ),
            Reply(text="done"),
        )
        assert all(r["ok"] for r in tool_results(await ws.turn("fix", context={"notebook": path})))
        expected = [("c2", "code", "third = 3"), ("c0", "code", "first = 0"), ("c1", "code", "second = 2")]
        await wait_for(lambda: cells_of(doc) == expected, what="edits in the moved cells")
    await disk_shows(jp_root_dir, path, expected)


def _inserted_id(body):
    for message in reversed(body["messages"]):
        if message["role"] == "tool" and "Inserted" in message["content"]:
            return message["content"].split("cell ")[1].split(" ")[0]
    raise AssertionError("no inserted cell in the transcript")


async def test_insert_and_edit_a_markdown_cell(agent, llm, jp_root_dir, collab):
    path = write_notebook(jp_root_dir, [("human0", "code", "x = 1")])
    llm.script(
        call(
            "notebook_insert_cell",
            path=path,
            source="# Results\n\nSome *text*.",
            cell_type="markdown",
            index=0,
        ),
        lambda body: call(
            "notebook_edit_cell",
            path=path,
            cell_id=_inserted_id(body),
            source="# Results\n\nSome **bold** text.",
        ),
        Reply(text="done"),
    )
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        results = tool_results(await ws.turn("add a heading", context={"notebook": path}))
        assert [r["ok"] for r in results] == [True, True], results
        new_id = results[0]["data"]["cell_id"]
        expected = [
            ("" + new_id, "markdown", "# Results\n\nSome **bold** text."),
            ("human0", "code", "x = 1"),
        ]
        await wait_for(lambda: cells_of(doc) == expected, what="the markdown cell in the person's view")
        assert "outputs" not in doc.ycells[0].to_py()
    disk = await disk_shows(jp_root_dir, path, expected)
    assert "outputs" not in disk["cells"][0] and "execution_count" not in disk["cells"][0]


async def test_editing_a_markdown_cells_text_keeps_its_attachment(agent, llm, jp_root_dir, collab):
    attachments = {"dot.png": {"image/png": PNG}}
    path = write_notebook(jp_root_dir, [("md0", "markdown", "Look: ![dot](attachment:dot.png)", attachments)])
    llm.script(
        call(
            "notebook_edit_cell",
            path=path,
            cell_id="md0",
            source="Look at this dot: ![dot](attachment:dot.png)",
        ),
        Reply(text="done"),
    )
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        assert doc.ycells[0].to_py()["attachments"] == attachments
        assert tool_results(await ws.turn("reword", context={"notebook": path}))[0]["ok"]
        expected = [("md0", "markdown", "Look at this dot: ![dot](attachment:dot.png)")]
        await wait_for(lambda: cells_of(doc) == expected, what="the edit in the person's view")
        assert doc.ycells[0].to_py()["attachments"] == attachments
    disk = await disk_shows(jp_root_dir, path, expected)
    assert disk["cells"][0]["attachments"] == attachments


async def test_a_notebook_of_2000_cells(agent, llm, jp_root_dir, collab):
    n = 2000
    cells = [(f"id{i:04d}", "code", f"v{i} = {i}") for i in range(n)]
    path = write_notebook(jp_root_dir, cells)
    llm.script(
        call("notebook_read", path=path),
        lambda body: call("notebook_read", path=path, start=_next_start(body)),
        call("notebook_read", path=path, start=1990),
        call("notebook_insert_cell", path=path, source="total = sum(range(2000))"),
        call("notebook_edit_cell", path=path, cell_id="id1998", source="v1998 = -1"),
        Reply(text="done"),
    )
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == n, timeout=60, what="initial sync")
        changes = []
        doc.ycells.observe(lambda event: changes.append(event.delta))
        results = tool_results(await ws.turn("append a total", timeout=120, context={"notebook": path}))
        assert [r["name"] for r in results] == ["notebook_read"] * 3 + [
            "notebook_insert_cell",
            "notebook_edit_cell",
        ]
        assert all(r["ok"] for r in results), results
        # notebook_read pages: each part fits what the model is sent, and says where the next part starts.
        sent = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
        first, second, last = sent[:3]
        end = results[0]["data"]["end"]
        assert 0 < end < n and results[1]["data"]["start"] == end
        assert first.startswith(f"Notebook {path} (kernel: python3), {n} cells:\n--- cell 0 id=id0000")
        assert f"v{end - 1} = {end - 1}\n[shown: cells 0 to {end - 1} of {n}; " in first
        assert f"call notebook_read with start={end} for the next cells]" in first
        assert f"--- cell {end} id=id{end:04d}" in second
        assert "more characters cut" not in first + second + last
        assert (
            "--- cell 1990 id=id1990" in last
            and last.endswith("v1999 = 1999")
            and "--- cell 1989" not in last
        )
        new_id = results[3]["data"]["cell_id"]
        assert results[3]["data"]["index"] == n
        expected = [
            *cells[:1998],
            ("id1998", "code", "v1998 = -1"),
            cells[1999],
            (new_id, "code", "total = sum(range(2000))"),
        ]
        await wait_for(
            lambda: cells_of(doc) == expected, timeout=30, what="insert and edit in the person's view"
        )
        # One cell inserted at the end, nothing deleted or rebuilt: the 2,000 cells keep their ids.
        ops = [op for delta in changes for op in delta]
        assert [op for op in ops if "delete" in op] == []
        assert [len(op["insert"]) for op in ops if "insert" in op] == [1]
    await wait_for(lambda: disk_cells(jp_root_dir, path) == expected, timeout=30, what="saved")


def _next_start(body):
    note = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "tool")
    return int(note.split("call notebook_read with start=")[1].split(" ")[0])


def test_an_index_given_for_a_cell_id_is_told_the_id_it_means():
    nb = YNotebook()
    cell = {
        "id": "abc",
        "cell_type": "code",
        "source": "",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }
    nb.set({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    assert find_cell(nb, "abc") == 0
    with pytest.raises(NotFound, match="not the index: the cell at index 0 has id abc"):
        find_cell(nb, "0")
    with pytest.raises(NotFound, match=r"^no cell with id '7'; the notebook's cell ids are: abc$"):
        find_cell(nb, "7")
