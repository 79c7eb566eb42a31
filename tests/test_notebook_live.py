"""The agent edits and runs cells in the live shared notebook while a person edits it too."""

from __future__ import annotations

import json

import nbformat

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import agent_in_room, room_socket, wait_for


def make_notebook(root, name="t.ipynb", sources=("x = 1",)):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, src in enumerate(sources):
        cell = nbformat.v4.new_code_cell(src)
        cell.id = f"human{i}"
        nb.cells.append(cell)
    nbformat.write(nb, root / name)
    return name


def read_disk(path):
    """The notebook as saved; the server saves in place, so a read mid-save can see a partial file."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, FileNotFoundError):
        return None


def cell_sources(doc):
    return [str(c["source"]) for c in doc.ycells]


async def test_collaborator_sees_agent_cell_and_its_outputs_live(agent, llm, jp_root_dir, collab):
    path = make_notebook(jp_root_dir, sources=("a = 20",))
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human0"})]),
        Reply(tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": path, "source": "print(a + 22)"})]),
        lambda body: Reply(
            tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": _last_cell_id(body)})]
        ),
        Reply(text="Done: it printed 42."),
    )
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        sid = await agent.new_session()
        ws = await agent.connect(sid)
        await ws.send(type="prompt", text="add a cell that prints a + 22", context={"notebook": path})
        await wait_for(lambda: len(doc.ycells) == 2, what="agent cell")
        # A concurrent human edit to their own cell while the agent works.
        with doc.ydoc.transaction():
            doc.set_cell(0, source="a = 20  # edited by a person")
        frames = await ws.until_type("done", "error", timeout=60)
        assert frames[-1]["type"] == "done", frames[-1]
        results = [f for f in frames if f["type"] == "tool_result"]
        assert [r["name"] for r in results] == [
            "notebook_run_cell",
            "notebook_insert_cell",
            "notebook_run_cell",
        ]
        assert all(r["ok"] for r in results), results
        assert "42" in results[2]["content"]
        await wait_for(lambda: doc.ycells[1]["outputs"].to_py(), what="outputs in the collaborator's view")
        assert doc.ycells[1]["outputs"].to_py()[0]["text"] == "42\n"
        assert doc.ycells[1]["execution_count"] == 2
        assert cell_sources(doc)[0] == "a = 20  # edited by a person"
    disk = await wait_for(
        lambda: (
            (d := read_disk(jp_root_dir / path))
            and len(d["cells"]) == 2
            and d["cells"][1]["outputs"]
            and "edited by a person" in "".join(d["cells"][0]["source"])
            and d
        )
    )
    assert "print(a + 22)" in "".join(disk["cells"][1]["source"])


def _last_cell_id(body):
    for message in reversed(body["messages"]):
        if message["role"] == "tool" and "Inserted" in message["content"]:
            return message["content"].split("cell ")[1].split(" ")[0]
    raise AssertionError("no inserted cell in the transcript")


async def test_agent_shows_in_the_collaborator_list_with_its_own_name(
    agent, llm, jp_root_dir, jp_fetch, jp_http_port, jp_base_url, jp_auth_header
):
    path = make_notebook(jp_root_dir)
    # A raw room client: it receives the awareness messages JupyterLab builds its collaborator list from.
    conn, _ = await room_socket(jp_fetch, jp_http_port, jp_base_url, jp_auth_header, path)
    llm.script(Reply(tool_calls=[ToolCallSpec("notebook_read", {"path": path})]), Reply(text="read it"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("look at it", context={"notebook": path})
    assert frames[-1]["type"] == "done"
    message = await agent_in_room(conn)
    assert b'"color":"#7c3aed"' in message.replace(b" ", b"")
    conn.close()
