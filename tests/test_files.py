"""File tools: reads, writes and patches inside the root, through the server's ContentsManager (its hidden-file
rules, its storage, its checkpoints), live through an open editor, with backups."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager
from tornado.web import HTTPError

from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.errors import BadRequest
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from jupyter_agent.tools.files import FILE_TOOLS
from tests.clients import collaborator, wait_for


def results(frames):
    return [f for f in frames if f["type"] == "tool_result"]


def by_call(frames) -> dict[str, dict[str, Any]]:
    return {f["call_id"]: f for f in frames if f["type"] == "tool_result"}


def call(tool_name: str, call_id: str, /, **arguments: Any) -> ToolCallSpec:
    return ToolCallSpec(tool_name, arguments, id=call_id)


class RecordingContentsManager(AsyncFileContentsManager):
    """The server's own file manager, remembering every path saved through it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.saved: list[str] = []

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        self.saved.append(path)
        return await super().save(model, path)


@pytest.fixture
def contents_config() -> dict[str, Any]:
    """The test server's ContentsManager settings; a fixture may change them before the server starts."""
    return {}


@pytest.fixture
def jp_server_config(jp_server_config, contents_config):
    server = {**jp_server_config["ServerApp"], "contents_manager_class": RecordingContentsManager}
    return {**jp_server_config, "ServerApp": server, "ContentsManager": contents_config}


@pytest.fixture
def hidden_allowed(contents_config):
    contents_config["allow_hidden"] = True


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


async def test_the_agents_writes_go_through_the_servers_contents_manager_which_keeps_a_checkpoint(
    agent, llm, jp_root_dir, jp_serverapp
):
    (jp_root_dir / "notes.md").write_text("first draft\n")
    llm.script(
        Reply(
            tool_calls=[
                call("file_write", "write", path="notes.md", content="second draft\n"),
                call("file_write", "create", path="new/deep/file.txt", content="made\n"),
            ]
        ),
        Reply(text="written"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    done = by_call(await ws.turn("rewrite my notes"))
    assert done["write"]["ok"] and done["create"]["ok"], done
    manager = jp_serverapp.contents_manager
    assert isinstance(manager, RecordingContentsManager)
    assert {"notes.md", "new", "new/deep", "new/deep/file.txt"} <= set(manager.saved)
    assert (jp_root_dir / "new" / "deep" / "file.txt").read_text() == "made\n"
    # JupyterLab's "Revert to checkpoint" brings back what was there before the agent wrote.
    checkpoints = await ensure_async(manager.list_checkpoints("notes.md"))
    assert checkpoints
    await ensure_async(manager.restore_checkpoint(checkpoints[0]["id"], "notes.md"))
    assert (jp_root_dir / "notes.md").read_text() == "first draft\n"


async def test_hidden_files_are_refused_when_the_contents_manager_hides_them(agent, llm, jp_root_dir):
    (jp_root_dir / ".env").write_text("API_KEY=hidden-value-42\n")
    (jp_root_dir / "visible.txt").write_text("hello\n")
    calls = [
        call("file_read", "read", path=".env"),
        call("file_patch", "patch", path=".env", old="API_KEY", new="KEY"),
        call("file_write", "write", path=".config/tool.toml", content="x = 1\n"),
        call("file_list", "list"),
    ]
    llm.script(Reply(tool_calls=calls), Reply(text="ok"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    done = by_call(await ws.turn("look at the settings"))
    for call_id in ("read", "patch", "write"):
        assert not done[call_id]["ok"] and "hidden" in done[call_id]["content"], done[call_id]
        assert "hidden-value-42" not in done[call_id]["content"]
    assert done["list"]["ok"] and "visible.txt" in done["list"]["content"]
    assert ".env" not in done["list"]["content"]
    assert (jp_root_dir / ".env").read_text() == "API_KEY=hidden-value-42\n"
    assert not (jp_root_dir / ".config").exists()


async def test_hidden_files_are_served_when_the_contents_manager_allows_them(
    hidden_allowed, agent, llm, jp_root_dir
):
    (jp_root_dir / ".env").write_text("DEBUG=0\n")
    calls = [
        call("file_read", "read", path=".env"),
        call("file_write", "write", path=".config/tool.toml", content="x = 1\n"),
        call("file_list", "list"),
    ]
    llm.script(Reply(tool_calls=calls), Reply(text="ok"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    done = by_call(await ws.turn("look at the settings"))
    assert done["read"]["ok"] and "DEBUG=0" in done["read"]["content"], done["read"]
    assert done["write"]["ok"], done["write"]
    assert (jp_root_dir / ".config" / "tool.toml").read_text() == "x = 1\n"
    assert done["list"]["ok"] and ".env" in done["list"]["content"]


async def test_backups_of_a_nested_file_and_of_a_name_with_underscores_are_restored_separately(
    agent, llm, jp_root_dir
):
    (jp_root_dir / "a").mkdir()
    (jp_root_dir / "a" / "b.txt").write_text("nested original\n")
    (jp_root_dir / "a__b.txt").write_text("flat original\n")
    llm.script(
        Reply(
            tool_calls=[
                call("file_write", "nested", path="a/b.txt", content="nested changed\n"),
                call("file_write", "flat", path="a__b.txt", content="flat changed\n"),
            ]
        ),
        Reply(text="changed both"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    done = by_call(await ws.turn("change both"))
    assert done["nested"]["ok"] and done["flat"]["ok"]
    assert done["nested"]["data"]["backup"] != done["flat"]["data"]["backup"]
    for path in ("a/b.txt", "a__b.txt"):
        _, listed = await agent.request(
            "GET", "sessions", sid, "files", "restore", params={"path": path}, expect=200
        )
        assert [b["path"] for b in listed["backups"]] == [path]
        await agent.request("POST", "sessions", sid, "files", "restore", body={"path": path}, expect=200)
    assert (jp_root_dir / "a" / "b.txt").read_text() == "nested original\n"
    assert (jp_root_dir / "a__b.txt").read_text() == "flat original\n"


async def test_a_listing_of_a_big_tree_stops_at_its_cap_and_says_so(agent, llm, jp_root_dir):
    for folder in range(30):
        (jp_root_dir / f"d{folder:02d}").mkdir()
        for name in range(40):
            (jp_root_dir / f"d{folder:02d}" / f"f{name:02d}.txt").write_text("x")
    llm.script(Reply(tool_calls=[call("file_list", "list", pattern="**/*.txt")]), Reply(text="many"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    listing = by_call(await ws.turn("list every text file"))["list"]
    assert listing["ok"] and listing["data"]["count"] == 500 and listing["data"]["cut"] == "entries"
    assert "[list cut at 500 entries" in listing["content"]
    lines = listing["content"].splitlines()
    assert lines[0].startswith("d00/f00.txt") and lines[499].startswith("d12/f19.txt")  # in name order


async def test_writes_through_a_symlink_that_leaves_the_root_are_refused(agent, llm, jp_root_dir):
    outside = Path(jp_root_dir).parent / "outside-of-root"
    outside.mkdir()
    (outside / "target.txt").write_text("theirs\n")
    os.symlink(outside / "target.txt", jp_root_dir / "link.txt")
    os.symlink(outside, jp_root_dir / "door")
    calls = [
        call("file_write", "file", path="link.txt", content="planted\n"),
        call("file_patch", "patch", path="link.txt", old="theirs", new="planted"),
        call("file_write", "folder", path="door/new.txt", content="planted\n"),
    ]
    llm.script(Reply(tool_calls=calls), Reply(text="refused"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    done = by_call(await ws.turn("write next door"))
    for call_id in ("file", "patch", "folder"):
        assert not done[call_id]["ok"] and "outside the workspace root" in done[call_id]["content"]
    assert (outside / "target.txt").read_text() == "theirs\n"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]


async def test_in_a_kernel_or_the_cli_the_file_tools_go_through_jupyters_file_manager(llm, tmp_path):
    from jupyter_agent.runtime import build_runtime

    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.md").write_text("first\n")
    (root / ".env").write_text("API_KEY=hidden-value-42\n")
    config = {
        "model": "openai/scripted",
        "model_options": {"api_base": llm.base_url, "api_key": "sk-test"},
        "db_path": str(tmp_path / "state" / "agent.db"),
        "backup_dir": str(tmp_path / "state" / "backups"),
        "retry_backoff": 0.01,
    }
    llm.script(
        Reply(
            tool_calls=[
                call("file_write", "write", path="notes.md", content="second\n"),
                call("file_read", "hidden", path=".env"),
                call("file_list", "list"),
            ]
        ),
        Reply(text="done"),
    )
    agent = build_runtime(root, config=config, tools=FILE_TOOLS, load_entry_points=False)
    events: list[dict[str, Any]] = []
    try:
        final = await agent.run(agent.sessions.create("files"), "tidy up", on_event=events.append)
    finally:
        await agent.close()
    assert final["type"] == "done", final
    done = by_call(events)
    assert done["write"]["ok"] and (root / "notes.md").read_text() == "second\n"
    assert not done["hidden"]["ok"] and "hidden" in done["hidden"]["content"]
    assert "notes.md" in done["list"]["content"] and ".env" not in done["list"]["content"]
    assert isinstance(agent.services["workspace"].contents, AsyncFileContentsManager)
    assert (root / ".ipynb_checkpoints" / "notes-checkpoint.md").read_text() == "first\n"


class MemoryContents:
    """A ContentsManager keeping files in a dict: a stand-in for a database or object-store backend."""

    allow_hidden = False

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.folders = {""}
        self.checkpoints: dict[str, str] = {}

    def file_exists(self, path: str) -> bool:
        return path in self.files

    def dir_exists(self, path: str) -> bool:
        return path in self.folders

    def is_hidden(self, path: str) -> bool:
        return False

    def should_list(self, name: str) -> bool:
        return True

    def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None):
        name = path.rpartition("/")[2]
        if path in self.folders:
            inside = [p for p in [*self.files, *self.folders] if p and p.rpartition("/")[0] == path]
            listing = [self.get(p, content=False) for p in inside] if content else None
            return {"name": name, "path": path, "type": "directory", "size": None, "content": listing}
        if path not in self.files:
            raise HTTPError(404, f"no {path}")
        text = self.files[path]
        return {
            "name": name,
            "path": path,
            "type": "file",
            "size": len(text.encode()),
            "format": "text" if content else None,
            "content": text if content else None,
        }

    def save(self, model: dict[str, Any], path: str) -> dict[str, Any]:
        if model["type"] == "directory":
            self.folders.add(path)
        else:
            self.files[path] = model["content"]
        return self.get(path, content=False)

    def create_checkpoint(self, path: str) -> dict[str, Any]:
        self.checkpoints[path] = self.files[path]
        return {"id": "checkpoint"}


async def test_a_contents_manager_that_stores_files_elsewhere_serves_every_file_operation(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    store = MemoryContents()
    workspace = Workspace(root, tmp_path / "backups", contents=store)

    written = await workspace.write("docs/a.md", "one\ntwo\n", "s1")
    patched = await workspace.patch("docs/a.md", "two", "2", "s1")
    await workspace.write("docs/b.txt", "bee\n", "s1")

    assert written["backup"] is None and patched["line"] == 2
    assert store.files == {"docs/a.md": "one\n2\n", "docs/b.txt": "bee\n"} and "docs" in store.folders
    assert store.checkpoints == {"docs/a.md": "one\ntwo\n"}
    assert list(root.iterdir()) == []  # nothing on disk
    assert (await workspace.read("docs/a.md"))["content"] == "one\n2\n"
    listing = await workspace.list("docs")
    assert [e["path"] for e in listing["entries"]] == ["docs/a.md", "docs/b.txt"] and listing["cut"] is None
    found = await workspace.list(".", "**/*.md")
    assert [e["path"] for e in found["entries"]] == ["docs/a.md"]
    await workspace.restore("s1", "docs/a.md")
    assert store.files["docs/a.md"] == "one\ntwo\n"
    with pytest.raises(BadRequest, match="hidden"):
        await workspace.read(".secrets")


async def test_backups_named_before_paths_were_encoded_are_still_listed_and_restored(tmp_path):
    root, backups = tmp_path / "root", tmp_path / "backups"
    (root / "data").mkdir(parents=True)
    (root / "data" / "notes.md").write_text("changed\n")
    (backups / "s1").mkdir(parents=True)
    (backups / "s1" / "20250101T120000.000001--data__notes.md").write_text("as it was\n")
    workspace = Workspace(root, backups)

    listed = workspace.backups("s1", "data/notes.md")
    restored = await workspace.restore("s1", "data/notes.md")

    assert [b["backup"] for b in listed] == ["20250101T120000.000001--data__notes.md"]
    assert restored["restored_from"] == "20250101T120000.000001--data__notes.md"
    assert (root / "data" / "notes.md").read_text() == "as it was\n"


async def test_a_path_too_long_for_a_backup_file_name_is_backed_up_and_restored(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    path = "/".join(["a-rather-long-folder-name"] * 10) + "/notes.md"
    workspace = Workspace(root, tmp_path / "backups")
    await workspace.write(path, "first\n", "s1")
    written = await workspace.write(path, "second\n", "s1")

    assert [b["path"] for b in workspace.backups("s1")] == [path]
    await workspace.restore("s1", path, written["backup"])
    assert (root / path).read_text() == "first\n"


def test_an_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    from jupyter_agent.security.paths import write_atomically

    (tmp_path / "elsewhere.txt").write_text("theirs\n")
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "backup.txt")

    write_atomically(tmp_path / "backup.txt", b"ours\n")

    assert (tmp_path / "elsewhere.txt").read_text() == "theirs\n"
    assert not (tmp_path / "backup.txt").is_symlink() and (tmp_path / "backup.txt").read_bytes() == b"ours\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.txt", "elsewhere.txt"]  # no temporary left


async def test_every_path_gets_backups_of_its_own_whatever_its_characters(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    paths = ["a/b.txt", "a__b.txt", "a%2Fb.txt", "~notes.md", "100%.txt", "with space.txt", "ünïcode.txt"]
    workspace = Workspace(root, tmp_path / "backups")
    for path in paths:
        await workspace.write(path, f"first {path}\n", "s1")
        await workspace.write(path, "second\n", "s1")

    assert sorted(b["path"] for b in workspace.backups("s1")) == sorted(paths)
    for path in paths:
        assert [b["path"] for b in workspace.backups("s1", path)] == [path]
        await workspace.restore("s1", path)
        assert (root / path).read_text() == f"first {path}\n"
