"""Review and undo of agent turns, against a real server with independent pycrdt collaborators.

Undo takes back exactly a turn's changes in the live notebook (every client and the file on disk see it) and
leaves what people typed meanwhile, in other cells and in the agent's own cells; where a person changed the
very lines the turn wrote, it is a conflict to settle, not an overwrite.
"""

from __future__ import annotations

import json

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply
from tests.clients import wait_for
from tests.test_notebook_tools import call, cells_of, disk_shows, write_notebook
from tests.test_shared_store import frames_until, session_socket


def inserted(frames):
    """The ids of the cells a turn inserted, from its ``change`` events."""
    return [f["change"]["cell_id"] for f in frames if f["type"] == "change" and f["change"]["op"] == "insert"]


def turn_id(frames):
    assert frames[-1]["type"] == "done", frames[-1]
    return frames[-1]["turn"]


async def run(ws, llm, *replies, path):
    llm.script(*replies, Reply(text="done"))
    return await ws.turn("change the notebook", context={"notebook": path})


async def test_undo_removes_only_the_agents_work_and_keeps_a_persons_typing(
    agent, llm, jp_root_dir, collab, agent_app
):
    cells = [("h0", "code", "a = 1\nb = 2\nc = 3"), ("h1", "code", "x = 1"), ("h2", "markdown", "# notes")]
    path = write_notebook(jp_root_dir, cells)
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    async with collab(path) as doc, collab(path) as watcher:
        await wait_for(lambda: len(doc.ycells) == 3 and len(watcher.ycells) == 3, what="initial sync")
        frames = await run(
            ws,
            llm,
            call("notebook_read", path=path),
            call("notebook_insert_cell", path=path, source="import pandas as pd", index=0),
            call("notebook_edit_cell", path=path, cell_id="h0", source="a = 1\nb = 20\nc = 3"),
            call("notebook_delete_cell", path=path, cell_id="h2"),
            path=path,
        )
        turn = turn_id(frames)
        changes = [f["change"] for f in frames if f["type"] == "change"]
        assert [(c["op"], c["target"]) for c in changes] == [
            ("insert", "cell"),
            ("edit", "cell"),
            ("delete", "cell"),
        ]
        assert changes[1] == {**changes[1], "added": 1, "removed": 1, "cell_id": "h0"}
        [new] = inserted(frames)
        await wait_for(lambda: str(doc.ycells[0]["id"]) == new, what="the inserted cell")
        # A person then types in the agent's edited cell (another line) and in a cell the agent never touched.
        source = doc.ycells[1]["source"]
        source += "\nd = 4  # typed by a person"
        doc.ycells[2]["source"].insert(0, "# person\n")
        await disk_shows(
            jp_root_dir,
            path,
            [
                (new, "code", "import pandas as pd"),
                ("h0", "code", "a = 1\nb = 20\nc = 3\nd = 4  # typed by a person"),
                ("h1", "code", "# person\nx = 1"),
            ],
        )

        _, review = await agent.request("GET", "sessions", sid, "turns", turn, "changes", expect=200)
        assert review["state"] == "applied" and review["totals"] == {
            "cells": 3,
            "files": 0,
            "added": 2,
            "removed": 2,
        }
        edit = next(t for t in review["targets"] if t["cell_id"] == "h0")
        assert "-b = 2\n+b = 20\n" in edit["diff"]

        _, undone = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={}, expect=200)
        assert undone["state"] == "undone" and undone["conflicts"] == []
        expected = [
            ("h0", "code", "a = 1\nb = 2\nc = 3\nd = 4  # typed by a person"),
            ("h1", "code", "# person\nx = 1"),
            ("h2", "markdown", "# notes"),
        ]
        for client in (doc, watcher):
            await wait_for(lambda c=client: cells_of(c) == expected, what="the undo in every client")
        await disk_shows(jp_root_dir, path, expected)
        # Every collaborator of the session heard it, with who did it; the audit log has it too.
        event = await ws.until(lambda f: f["type"] == "turn_review")
        assert event[-1]["turn"] == turn and event[-1]["action"] == "undo" and event[-1]["user"]["username"]
        entries = agent_app.engine.store.audit_log(20)
        assert any(e["action"] == "turn_undo" and e["detail"]["turn"] == turn for e in entries)

        # Undo twice is refused; redo puts the turn back (the person's typing still there).
        status, again = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={})
        assert status == 409 and again["code"] == "already_undone"
        _, redone = await agent.request("POST", "sessions", sid, "turns", turn, "redo", body={}, expect=200)
        assert redone["state"] == "applied"
        redo_expected = [
            (new, "code", "import pandas as pd"),
            ("h0", "code", "a = 1\nb = 20\nc = 3\nd = 4  # typed by a person"),
            ("h1", "code", "# person\nx = 1"),
        ]
        await wait_for(lambda: cells_of(watcher) == redo_expected, what="the redo in the watcher")
        await disk_shows(jp_root_dir, path, redo_expected)


async def test_an_earlier_turn_undone_while_a_later_turns_edits_stay(agent, llm, jp_root_dir, collab):
    path = write_notebook(jp_root_dir, [("h0", "code", "x = 1")])
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 1, what="initial sync")
        frames = await run(ws, llm, call("notebook_insert_cell", path=path, source="first = 1"), path=path)
        first, [first_cell] = turn_id(frames), inserted(frames)
        frames = await run(
            ws,
            llm,
            call("notebook_read", path=path),
            call("notebook_edit_cell", path=path, cell_id="h0", source="x = 2"),
            call("notebook_insert_cell", path=path, source="second = 2"),
            path=path,
        )
        second, [second_cell] = turn_id(frames), inserted(frames)
        assert first != second
        _, undone = await agent.request("POST", "sessions", sid, "turns", first, "undo", body={}, expect=200)
        assert undone["reverted"] == [f"cell:{path}:{first_cell}"]
        expected = [("h0", "code", "x = 2"), (second_cell, "code", "second = 2")]
        await wait_for(lambda: cells_of(doc) == expected, what="only the first turn undone")
        await disk_shows(jp_root_dir, path, expected)
        # A bare undo over the WebSocket takes back the latest turn that still stands: the second.
        await ws.send(type="undo")
        review = (
            await ws.until(
                lambda f: f["type"] == "turn_review" and f["action"] == "undo" and f["turn"] != first
            )
        )[-1]
        assert review["turn"] == second and review["state"] == "undone"
        await wait_for(lambda: cells_of(doc) == [("h0", "code", "x = 1")], what="both turns undone")
        # The model hears of it with the next prompt, so it reads the notebook again before editing.
        llm.script(Reply(text="noted"))
        await ws.turn("what now?")
        prompt = llm.requests[-1]["messages"][-1]["content"]
        assert "undid the changes of an earlier turn" in prompt and prompt.endswith("what now?")


async def test_a_person_changing_the_lines_the_turn_wrote_is_a_conflict_not_an_overwrite(
    agent, llm, jp_root_dir, collab
):
    path = write_notebook(jp_root_dir, [("h0", "code", "a = 1\nb = 2"), ("h1", "code", "y = 1\nz = 1")])
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    async with collab(path) as doc:
        await wait_for(lambda: len(doc.ycells) == 2, what="initial sync")
        turn = turn_id(
            await run(
                ws,
                llm,
                call("notebook_read", path=path),
                call("notebook_edit_cell", path=path, cell_id="h0", source="a = 1\nb = 20"),
                call("notebook_edit_cell", path=path, cell_id="h1", source="y = 10\nz = 1"),
                path=path,
            )
        )
        # The person rewrites both lines the agent wrote.
        for index, old, new in ((0, "b = 20", "b = 21  # mine"), (1, "y = 10", "y = 11  # mine")):
            text = doc.ycells[index]["source"]
            at = str(text).index(old)
            with doc.ydoc.transaction():
                del text[at : at + len(old)]
                text.insert(at, new)
        mine = [("h0", "code", "a = 1\nb = 21  # mine"), ("h1", "code", "y = 11  # mine\nz = 1")]
        await disk_shows(jp_root_dir, path, mine)

        _, undone = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={}, expect=200)
        assert sorted(c["cell_id"] for c in undone["conflicts"]) == ["h0", "h1"]
        conflict = next(c for c in undone["conflicts"] if c["cell_id"] == "h0")
        assert conflict["theirs"] == "a = 1\nb = 21  # mine" and conflict["turns"] == "a = 1\nb = 2"
        assert cells_of(doc) == mine  # nothing overwritten
        _, listed = await agent.request("GET", "sessions", sid, "turns", turn, "changes", expect=200)
        assert len(listed["conflicts"]) == 2

        # Keep theirs in one cell; take the turn's change back in the other.
        resolve = {f"cell:{path}:h0": "keep", f"cell:{path}:h1": "revert"}
        _, settled = await agent.request(
            "POST", "sessions", sid, "turns", turn, "undo", body={"resolve": resolve}, expect=200
        )
        assert settled["conflicts"] == [] and settled["kept"] == [f"cell:{path}:h0"]
        expected = [("h0", "code", "a = 1\nb = 21  # mine"), ("h1", "code", "y = 1\nz = 1")]
        await wait_for(lambda: cells_of(doc) == expected, what="the settled conflicts")
        await disk_shows(jp_root_dir, path, expected)


async def test_review_mode_marks_edits_pending_for_everyone_then_accept_and_reject(
    agent, llm, jp_root_dir, collab, agent_app
):
    path = write_notebook(
        jp_root_dir, [("h0", "code", "x = 1"), ("h1", "code", "y = 1"), ("h2", "code", "z = 1")]
    )
    sid = await agent.new_session()
    _, session = await agent.request("PATCH", "sessions", sid, body={"edit_mode": "review"}, expect=200)
    assert session["edit_mode"] == "review"
    ws = await agent.connect(sid)

    def markers(doc):
        return {
            str(c["id"]): (c["metadata"].get("jupyter_agent") or {}).get("pending")
            for c in doc.ycells
            if c["metadata"].get("jupyter_agent")
        }

    async with collab(path) as alice, collab(path) as bob:
        await wait_for(lambda: len(alice.ycells) == 3 and len(bob.ycells) == 3, what="initial sync")
        frames = await run(
            ws,
            llm,
            call("notebook_read", path=path),
            call("notebook_insert_cell", path=path, source="new = 1", index=0),
            call("notebook_edit_cell", path=path, cell_id="h0", source="x = 2"),
            call("notebook_delete_cell", path=path, cell_id="h2"),
            path=path,
        )
        turn, [new] = turn_id(frames), inserted(frames)
        pending = {new: "insert", "h0": "edit", "h2": "delete"}
        for doc in (alice, bob):
            await wait_for(lambda d=doc: markers(d) == pending, what="pending markers in both clients")
        assert [c[2] for c in cells_of(bob)] == ["new = 1", "x = 2", "y = 1", "z = 1"]  # nothing deleted yet
        _, review = await agent.request("GET", "sessions", sid, "turns", turn, "changes", expect=200)
        assert review["state"] == "pending" and all(t["pending"] for t in review["targets"])

        # Bob accepts the edit of h0 alone; then Alice rejects the rest.
        _, one = await agent.request(
            "POST",
            "sessions",
            sid,
            "turns",
            turn,
            "review",
            body={"action": "accept", "cells": ["h0"]},
            expect=200,
        )
        assert one["state"] == "partial"
        await wait_for(lambda: markers(alice) == {new: "insert", "h2": "delete"}, what="h0 accepted")
        _, rest = await agent.request(
            "POST", "sessions", sid, "turns", turn, "review", body={"action": "reject"}, expect=200
        )
        assert rest["state"] == "partial"  # one accepted, the rest rejected
        expected = [("h0", "code", "x = 2"), ("h1", "code", "y = 1"), ("h2", "code", "z = 1")]
        for doc in (alice, bob):
            await wait_for(lambda d=doc: cells_of(d) == expected and not markers(d), what="the rejection")
        await disk_shows(jp_root_dir, path, expected)

        # A second turn, accepted whole: the pending deletion is carried out, the markers go.
        frames = await run(ws, llm, call("notebook_delete_cell", path=path, cell_id="h1"), path=path)
        second = turn_id(frames)
        await wait_for(lambda: markers(bob) == {"h1": "delete"}, what="pending deletion")
        await ws.send(type="review", turn=second, action="accept")
        review = (await ws.until(lambda f: f["type"] == "turn_review" and f["turn"] == second))[-1]
        assert review["state"] == "accepted" and review["action"] == "accept"
        expected = [("h0", "code", "x = 2"), ("h2", "code", "z = 1")]
        await wait_for(lambda: cells_of(bob) == expected and not markers(bob), what="accepted deletion")
        await disk_shows(jp_root_dir, path, expected)
        actions = [e["action"] for e in agent_app.engine.store.audit_log(50)]
        assert {"turn_accept", "turn_reject", "edit_mode"} <= set(actions)


async def test_a_file_patch_undone_keeps_a_later_human_edit(agent, llm, jp_root_dir):
    (jp_root_dir / "notes.txt").write_text("alpha\nbeta\ngamma\ndelta\n")
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    llm.script(
        call("file_patch", path="notes.txt", old="beta", new="BETA"),
        call("file_write", path="new.txt", content="made by the agent\n"),
        Reply(text="done"),
    )
    turn = turn_id(await ws.turn("patch it"))
    (jp_root_dir / "notes.txt").write_text("alpha\nBETA\ngamma\ndelta edited by a person\n")
    _, review = await agent.request("GET", "sessions", sid, "turns", turn, "changes", expect=200)
    assert [(t["op"], t["path"]) for t in review["targets"]] == [
        ("write", "notes.txt"),
        ("create", "new.txt"),
    ]
    _, undone = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={}, expect=200)
    assert undone["conflicts"] == [] and sorted(undone["reverted"]) == ["file:new.txt", "file:notes.txt"]
    assert (jp_root_dir / "notes.txt").read_text() == "alpha\nbeta\ngamma\ndelta edited by a person\n"
    assert not (jp_root_dir / "new.txt").exists()
    # Redo, then a person changes the agent's line: undoing again is a conflict, and the person's line stays.
    await agent.request("POST", "sessions", sid, "turns", turn, "redo", body={}, expect=200)
    (jp_root_dir / "notes.txt").write_text("alpha\nBeta (person)\ngamma\ndelta edited by a person\n")
    _, undone = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={}, expect=200)
    assert [c["key"] for c in undone["conflicts"]] == ["file:notes.txt"]
    assert (
        jp_root_dir / "notes.txt"
    ).read_text() == "alpha\nBeta (person)\ngamma\ndelta edited by a person\n"


async def test_bad_review_requests_get_clear_errors(agent, llm, jp_root_dir):
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    llm.script(Reply(text="nothing to change"))
    turn = turn_id(await ws.turn("hello"))
    status, body = await agent.request("POST", "sessions", sid, "turns", turn, "undo", body={})
    assert status == 409 and body["code"] == "no_changes"
    status, body = await agent.request("GET", "sessions", sid, "turns", "nosuchturn", "changes")
    assert status == 404
    status, body = await agent.request(
        "POST", "sessions", sid, "turns", turn, "review", body={"action": "maybe"}
    )
    assert status == 400
    status, body = await agent.request("PATCH", "sessions", sid, body={"edit_mode": "sometimes"})
    assert status == 400
    await ws.send(type="undo", turn=["not", "a", "turn"])
    error = (await ws.until(lambda f: f["type"] == "error" and "seq" not in f))[-1]
    assert "turn" in error["message"]


def test_undo_after_a_server_restart(llm, tmp_path) -> None:
    with JupyterServer(llm_base_url=llm.base_url) as srv:
        write_notebook(srv.root, [("h0", "code", "x = 1")])
        sid = srv.api("POST", "api/agent/sessions", {"title": "restart"})["id"]
        ws = session_socket(srv, sid)
        json.loads(ws.recv())
        llm.script(
            call("notebook_read", path="t.ipynb"),
            call("notebook_edit_cell", path="t.ipynb", cell_id="h0", source="x = 2"),
            call("notebook_insert_cell", path="t.ipynb", source="y = 1"),
            Reply(text="done"),
        )
        ws.send(json.dumps({"type": "prompt", "text": "edit", "context": {"notebook": "t.ipynb"}}))
        done = frames_until(ws, lambda f: f["type"] in ("done", "error"))[-1]
        assert done["type"] == "done", done
        ws.close()

        def disk_sources():
            cells = json.loads((srv.root / "t.ipynb").read_text())["cells"]
            return ["".join(c["source"]) for c in cells]

        wait_sync(lambda: disk_sources() == ["x = 2", "y = 1"])
        srv.restart()
        undone = srv.api("POST", f"api/agent/sessions/{sid}/turns/{done['turn']}/undo", {})
        assert undone["state"] == "undone" and undone["conflicts"] == []
        wait_sync(lambda: disk_sources() == ["x = 1"])


def wait_sync(predicate, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_jupyter_agent_undo_and_redo_from_the_cli(tmp_path, llm) -> None:
    from tests.test_cli import agent_cli
    from tests.test_magics import kernel_env

    env = kernel_env(tmp_path, llm)
    write_notebook(tmp_path, [("h0", "code", "a = 1\nb = 2")])
    llm.script(
        call("notebook_read", path="t.ipynb"),
        call("notebook_edit_cell", path="t.ipynb", cell_id="h0", source="a = 1\nb = 20"),
        call("file_write", path="out.txt", content="result\n"),
        Reply(text="done"),
    )
    done = agent_cli("run", "change b", "--notebook", "t.ipynb", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    session = done.stderr.rsplit("(session ", 1)[1].split(")")[0]

    def sources():
        return ["".join(c["source"]) for c in json.loads((tmp_path / "t.ipynb").read_text())["cells"]]

    assert sources() == ["a = 1\nb = 20"] and (tmp_path / "out.txt").exists()
    # A person edits another line of the agent's cell on disk; the undo keeps it (from another directory).
    nb = json.loads((tmp_path / "t.ipynb").read_text())
    nb["cells"][0]["source"] = "a = 100  # mine\nb = 20"
    (tmp_path / "t.ipynb").write_text(json.dumps(nb))
    undone = agent_cli("undo", session, env=env, cwd=tmp_path.parent)
    assert undone.returncode == 0, undone.stderr
    assert "Undid turn" in undone.stdout and "t.ipynb" in undone.stdout
    assert sources() == ["a = 100  # mine\nb = 2"] and not (tmp_path / "out.txt").exists()
    again = agent_cli("undo", session, env=env, cwd=tmp_path)
    assert again.returncode == 1 and "no turn of this session has changes to undo" in again.stderr
    redone = agent_cli("undo", session, "--redo", env=env, cwd=tmp_path)
    assert redone.returncode == 0, redone.stderr
    assert sources() == ["a = 100  # mine\nb = 20"] and (tmp_path / "out.txt").read_text() == "result\n"
    unknown = agent_cli("undo", "nosuchsession", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "no session matches" in unknown.stderr
    audit = agent_cli("audit", "show", "--json", env=env, cwd=tmp_path)
    actions = [e["action"] for e in json.loads(audit.stdout)]
    assert "turn_undo" in actions and "turn_redo" in actions


def test_agent_undo_in_a_notebook_takes_back_the_sessions_last_turn(tmp_path, llm) -> None:
    from tests.test_magics import kernel_env, start_kernel, stop_kernel

    kernel = start_kernel(kernel_env(tmp_path, llm), str(tmp_path))
    try:
        assert kernel.run("%load_ext jupyter_agent").status == "ok"
        (tmp_path / "data.csv").write_text("x\n1\n")
        llm.script(call("file_patch", path="data.csv", old="1", new="2"), Reply(text="patched"))
        assert kernel.run("%%agent\nchange the value").status == "ok"
        assert (tmp_path / "data.csv").read_text() == "x\n2\n"
        (tmp_path / "data.csv").write_text("x\n2\n3  # a person's row\n")
        undone = kernel.run("%agent undo")
        assert "Undid turn" in undone.stream() and "data.csv" in undone.stream()
        assert (tmp_path / "data.csv").read_text() == "x\n1\n3  # a person's row\n"
        again = kernel.run("%agent undo")
        assert "nothing" in again.stream("stderr") or "no turn" in again.stream("stderr")
        kernel.run("%agent redo")
        assert (tmp_path / "data.csv").read_text() == "x\n2\n3  # a person's row\n"
    finally:
        stop_kernel(kernel)


async def test_plan_tasks_record_their_changes_under_the_plans_turn_per_task(agent, llm, jp_root_dir) -> None:
    from tests.test_planner import PlanModel, calls, plan_reply, spec

    model = PlanModel(llm)
    model.plans.append(plan_reply(spec("a", tools=("file_write",)), spec("b", ("a",), tools=("file_write",))))
    model.script("a", calls("file_write", path="a.txt", content="from task a\n"))
    model.script("b", calls("file_write", path="b.txt", content="from task b\n"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    await ws.send(type="prompt", text="write two files", plan=True, auto=True)
    frames = await ws.until_type("done", "error")
    assert frames[-1]["type"] == "done", frames[-1]
    plan_turn = frames[-1]["turn"]
    assert {(f["task"], f["change"]["key"]) for f in frames if f["type"] == "change"} == {
        ("a", "file:a.txt"),
        ("b", "file:b.txt"),
    }
    _, review = await agent.request("GET", "sessions", sid, "turns", plan_turn, "changes", expect=200)
    assert {t["key"]: t["tasks"] for t in review["targets"]} == {"file:a.txt": ["a"], "file:b.txt": ["b"]}
    await agent.request("POST", "sessions", sid, "turns", plan_turn, "undo", body={}, expect=200)
    assert not (jp_root_dir / "a.txt").exists() and not (jp_root_dir / "b.txt").exists()
