"""File tools: reads, writes and patches inside the root, live through an open editor, with backups."""

from __future__ import annotations

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import collaborator, wait_for


def results(frames):
    return [f for f in frames if f["type"] == "tool_result"]


async def test_write_patch_read_list_and_restore(agent, llm, jp_root_dir):
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "notes.md").write_text("line one\nline two\nline three\n")
    llm.script(
        Reply(tool_calls=[ToolCallSpec("file_read", {"path": "data/notes.md", "offset": 2, "limit": 1})]),
        Reply(
            tool_calls=[
                ToolCallSpec("file_patch", {"path": "data/notes.md", "old": "line two", "new": "LINE 2"})
            ]
        ),
        Reply(tool_calls=[ToolCallSpec("file_write", {"path": "data/new.py", "content": "print('hi')\n"})]),
        Reply(
            tool_calls=[
                ToolCallSpec("file_list", {"path": "data", "pattern": "*.md"}),
                ToolCallSpec("file_patch", {"path": "data/notes.md", "old": "line", "new": "x"}),
            ]
        ),
        Reply(text="done"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("edit my notes")
    read, patch, write, listing, ambiguous = results(frames)
    assert read["ok"] and read["content"].endswith("line two\n") and "lines 2-2 of 3" in read["content"]
    assert patch["ok"] and (jp_root_dir / "data" / "notes.md").read_text() == "line one\nLINE 2\nline three\n"
    assert write["ok"] and (jp_root_dir / "data" / "new.py").read_text() == "print('hi')\n"
    assert listing["ok"] and "data/notes.md" in listing["content"] and "new.py" not in listing["content"]
    assert not ambiguous["ok"] and "occurs 2 times" in ambiguous["content"]
    status, backups = await agent.request(
        "GET", "sessions", sid, "files", "restore", params={"path": "data/notes.md"}
    )
    assert status == 200 and len(backups["backups"]) == 1
    status, restored = await agent.request(
        "POST", "sessions", sid, "files", "restore", body={"path": "data/notes.md"}
    )
    assert status == 200, restored
    assert (jp_root_dir / "data" / "notes.md").read_text() == "line one\nline two\nline three\n"
    status, err = await agent.request(
        "POST", "sessions", sid, "files", "restore", body={"path": "data/none.md"}
    )
    assert status == 404 and err["code"] == "not_found"


async def test_notebook_files_are_not_rewritten_by_file_write(agent, llm, jp_root_dir):
    (jp_root_dir / "n.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    llm.script(
        Reply(tool_calls=[ToolCallSpec("file_write", {"path": "n.ipynb", "content": "{}"})]), Reply(text="ok")
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    result = results(await ws.turn("clobber it"))[0]
    assert not result["ok"] and "notebook tools" in result["content"]
    assert '"cells": []' in (jp_root_dir / "n.ipynb").read_text()


async def test_file_open_in_a_collaborative_editor_changes_live(
    agent, llm, jp_root_dir, jp_fetch, jp_http_port, jp_base_url, jp_auth_header
):
    (jp_root_dir / "script.py").write_text("a = 1\nb = 2\n")
    llm.script(
        Reply(
            tool_calls=[ToolCallSpec("file_patch", {"path": "script.py", "old": "b = 2", "new": "b = 20"})]
        ),
        Reply(text="patched"),
    )
    async with collaborator(
        jp_fetch, jp_http_port, jp_base_url, jp_auth_header, "script.py", kind="file"
    ) as doc:
        await wait_for(lambda: doc.source == "a = 1\nb = 2\n", what="editor sync")
        # The person types at the top of the file while the agent patches further down.
        ytext = doc.ydoc.get("source", type=type(doc.ydoc["source"]))
        ytext.insert(0, "# mine\n")
        sid = await agent.new_session()
        ws = await agent.connect(sid)
        frames = await ws.turn("change b")
        assert results(frames)[0]["ok"] and results(frames)[0]["data"]["live"] is True
        await wait_for(lambda: doc.source == "# mine\na = 1\nb = 20\n", what="agent's patch in the editor")
    await wait_for(
        lambda: (jp_root_dir / "script.py").read_text() == "# mine\na = 1\nb = 20\n", what="saved file"
    )
