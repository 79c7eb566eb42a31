"""Faults through the real server: bad frames, dying kernels, timeouts, cancels and approvals over the wire."""

from __future__ import annotations

import json

import pytest

from jupyter_agent.collaboration.notebooks import find_cell
from jupyter_agent.testing.scripted_llm import Fail, Malformed, Reply, Stall, ToolCallSpec
from tests.clients import collaborator, wait_for
from tests.test_notebook_live import make_notebook


def results(frames):
    return [f for f in frames if f["type"] == "tool_result"]


def terminal(frames):
    ends = [f for f in frames if f["type"] in ("done", "error")]
    assert len(ends) == 1, ends
    return ends[0]


async def test_bad_frames_get_clear_errors_and_the_connection_lives_on(agent, agent_app):
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    await ws.send_raw("{not json")
    assert (await ws.next()) == {
        "type": "error",
        "code": "bad_message",
        "message": "the message is not valid JSON",
    }
    await ws.send(type="dance")
    assert (await ws.next())["code"] == "bad_message"
    await ws.send_raw(json.dumps([1, 2]))
    assert (await ws.next())["code"] == "bad_message"
    await ws.send(type="prompt", text="")
    assert (await ws.next())["code"] == "bad_request"
    await ws.send(type="prompt", text="x", context="not an object")
    assert (await ws.next())["code"] == "bad_request"
    await ws.send(type="approve", call_id="nope", decision="once")
    assert (await ws.next())["code"] == "not_found"
    await ws.send(type="approve", call_id="nope", decision="maybe")
    assert (await ws.next())["code"] == "bad_request"
    huge = "x" * (agent_app.max_message_bytes + 10)
    await ws.send(type="prompt", text=huge)
    frame = await ws.next()
    assert frame["code"] == "message_too_large" and "limit" in frame["message"]
    await ws.send(type="ping", id=7)
    assert (await ws.next()) == {"type": "pong", "id": 7}
    _, events = await agent.request("GET", "sessions", sid, "events")
    assert events["events"] == []  # nothing bad was logged as part of the conversation


async def test_unknown_session_is_refused_clearly(agent):
    status, data = await agent.request("GET", "sessions", "doesnotexist", "events")
    assert status == 404 and "doesnotexist" in data["message"]
    with pytest.raises(Exception) as err:
        await agent.connect("doesnotexist")
    assert "404" in str(err.value)
    status, data = await agent.request("POST", "sessions", body="{oops")
    assert status == 400 and data["code"] == "bad_request"
    status, data = await agent.request("GET", "sessions", "x", "events", params={"after": "abc"})
    assert status in (400, 404)


async def test_provider_error_then_success_over_the_wire(agent, llm):
    llm.script(Fail(500), Fail(503), Reply(text="recovered fine"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("hi")
    assert terminal(frames)["type"] == "done"
    assert "".join(f["text"] for f in frames if f["type"] == "token") == "recovered fine"
    assert len(llm.requests) == 3


async def test_provider_failure_ends_turn_with_one_error_and_the_session_goes_on(agent, llm):
    llm.script(Fail(500), Fail(500), Fail(500), Reply(text="back again"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    end = terminal(await ws.turn("hi"))
    assert end["type"] == "error" and end["code"] == "provider_error" and "HTTP 500" in end["message"]
    assert terminal(await ws.turn("again"))["type"] == "done"


async def test_malformed_stream_ends_with_error_and_keeps_partial_text(agent, llm):
    llm.script(Malformed(after_text="Here is the start"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("hi")
    assert terminal(frames)["type"] == "error"
    partial = [f for f in frames if f["type"] == "message" and f.get("partial")]
    assert partial and partial[0]["content"] == "Here is the start"


async def test_cancel_mid_stream_ends_with_done_cancelled(agent, llm):
    llm.script(Stall(seconds=20, after_text="I am thinking about"), Reply(text="second answer"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    await ws.send(type="prompt", text="long one")
    shown: list[str] = []

    def all_shown(frame: dict) -> bool:  # the text may come in several tokens: cancel once all is seen
        if frame.get("type") == "token":
            shown.append(frame["text"])
        return "".join(shown) == "I am thinking about"

    await ws.until(all_shown)
    await ws.send(type="cancel")
    frames = await ws.until_type("done", "error")
    assert frames[-1]["type"] == "done" and frames[-1]["reason"] == "cancelled"
    assert terminal(await ws.turn("next"))["type"] == "done"
    sent = llm.requests[-1]["messages"]
    assert any(m["role"] == "assistant" and m.get("content") == "I am thinking about" for m in sent)


async def test_approval_is_asked_over_the_wire_and_answered(agent, llm, jp_root_dir):
    llm.script(
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "echo approved > out.txt"})]),
        Reply(text="ran it"),
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "echo denied > no.txt"})]),
        Reply(text="ok, not running it"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    watcher = await agent.connect(sid)
    await ws.send(type="prompt", text="write a file")
    frames = await ws.until_type("approval_request")
    request = frames[-1]
    assert request["name"] == "shell_run" and request["arguments"]["command"] == "echo approved > out.txt"
    assert (await watcher.until_type("approval_request"))[-1]["call_id"] == request["call_id"]
    await ws.send(type="approve", call_id=request["call_id"], decision="once")
    frames = await ws.until_type("done", "error")
    assert frames[-1]["type"] == "done"
    assert [r["ok"] for r in results(frames)] == [True]
    assert (jp_root_dir / "out.txt").read_text() == "approved\n"
    await ws.send(type="prompt", text="write another")
    request = (await ws.until_type("approval_request"))[-1]
    await ws.send(type="approve", call_id=request["call_id"], decision="deny")
    frames = await ws.until_type("done", "error")
    assert results(frames)[0]["ok"] is False and "denied" in results(frames)[0]["content"]
    assert not (jp_root_dir / "no.txt").exists()


async def test_unanswered_approval_ends_with_a_clear_error(agent, agent_app, llm, jp_root_dir):
    agent_app.service.sessions.approval_timeout = 0.3
    llm.script(Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "touch never.txt"})]))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("do it")
    end = terminal(frames)
    assert end["type"] == "error" and end["code"] == "approval_timeout" and "shell_run" in end["message"]
    assert [f["decision"] for f in frames if f["type"] == "approval_result"] == ["timeout"]
    assert not (jp_root_dir / "never.txt").exists()


async def test_kernel_dying_mid_cell_is_reported_and_the_next_run_works(agent, llm, jp_root_dir):
    path = make_notebook(
        jp_root_dir, sources=("import os; print('bye', flush=True); os._exit(1)", "print(6 * 7)")
    )
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human0"})]),
        Reply(text="the kernel died"),
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human1"})]),
        Reply(text="42"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("run the first cell", timeout=90)
    assert terminal(frames)["type"] == "done"
    died = results(frames)[0]
    assert died["ok"] is False and died["data"]["status"] == "kernel_died"
    frames = await ws.turn("run the second", timeout=90)
    second = results(frames)[0]
    assert second["ok"] is True and "42" in second["content"], second["content"]
    assert "kernel had died and was restarted" in second["content"]


async def test_cell_timeout_interrupts_the_kernel_and_stops_writes(
    agent, llm, jp_root_dir, jp_fetch, jp_http_port, jp_base_url, jp_auth_header
):
    path = make_notebook(
        jp_root_dir,
        sources=("import time\nprint('start', flush=True)\ntime.sleep(30)\nprint('late')", "print('after')"),
    )
    llm.script(
        Reply(
            tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human0", "timeout": 2})]
        ),
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human1"})]),
        Reply(text="ok"),
    )
    async with collaborator(jp_fetch, jp_http_port, jp_base_url, jp_auth_header, path) as doc:
        sid = await agent.new_session()
        ws = await agent.connect(sid)
        frames = await ws.turn("run it", timeout=90)
        assert terminal(frames)["type"] == "done"
        first, second = results(frames)
        assert first["data"]["status"] == "timeout" and "interrupted" in first["content"]
        assert second["ok"] and "after" in second["content"]
        await wait_for(lambda: doc.ycells[1]["outputs"].to_py())
        outputs = doc.ycells[0]["outputs"].to_py()
        assert "start" in outputs[0]["text"]
        assert all("late" not in json.dumps(o) for o in outputs)
        assert doc.ycells[0]["execution_state"] == "idle"


async def test_cancel_while_a_cell_runs_interrupts_it(agent, agent_app, llm, jp_root_dir):
    path = make_notebook(
        jp_root_dir, sources=("import time\nprint('go', flush=True)\ntime.sleep(60)", "print(1)")
    )
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human0"})]),
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human1"})]),
        Reply(text="fine"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    await ws.send(type="prompt", text="run")
    await ws.until_type("tool_call")
    # Wait until the kernel really runs the cell: its first output is in the shared document.
    docs = agent_app.tool_services["notebooks"].documents
    nb = await docs.notebook(path)
    await wait_for(lambda: nb.ycells[find_cell(nb, "human0")]["outputs"].to_py())
    await ws.send(type="cancel")
    frames = await ws.until_type("done", "error")
    assert frames[-1]["type"] == "done" and frames[-1]["reason"] == "cancelled"
    assert nb.ycells[0]["execution_state"] == "idle"
    frames = await ws.turn("now the other", timeout=60)
    assert results(frames)[0]["ok"], results(frames)
