"""The server extension end to end: routes, a streamed turn, replay, and two clients on one session."""

from __future__ import annotations

import json

from jupyter_agent.testing.scripted_llm import Reply


async def test_health_reports_the_configured_model(agent):
    status, data = await agent.request("GET", "health")
    assert status == 200
    assert data["status"] == "ok"
    assert data["model"] == "openai/scripted"
    assert "openai/scripted" in data["models"]


async def test_should_stream_tokens_and_end_with_done(agent, llm):
    llm.script(Reply(text="Hello there, notebook person"))
    sid = await agent.new_session("first")
    ws = await agent.connect(sid)
    frames = await ws.turn("say hello")
    types = [f["type"] for f in frames]
    assert types[0] == "message" and frames[0]["role"] == "user"
    tokens = [f["text"] for f in frames if f["type"] == "token"]
    assert len(tokens) >= 2 and "".join(tokens) == "Hello there, notebook person"
    assert types[-1] == "done" and frames[-1]["reason"] == "completed"
    assert types.count("done") + types.count("error") == 1
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(f["session"] == sid for f in frames)
    usage = next(f for f in frames if f["type"] == "usage")
    assert usage["completion_tokens"] > 0 and usage["ttft_ms"] is not None


async def test_two_clients_see_the_same_events_in_the_same_order(agent, llm):
    llm.script(Reply(text="one two three four"))
    sid = await agent.new_session()
    first = await agent.connect(sid)
    second = await agent.connect(sid)
    frames = await first.turn("count")
    seen = await second.until_type("done")
    assert [(f["seq"], f["type"]) for f in seen] == [(f["seq"], f["type"]) for f in frames]


async def test_reconnect_with_after_misses_nothing(agent, llm):
    llm.script(Reply(text="alpha beta"), Reply(text="gamma delta"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    first = await ws.turn("one")
    last_seen = first[-1]["seq"]
    ws.close()
    # Another client runs a turn while the first is away.
    other = await agent.connect(sid, after=last_seen)
    missed = await other.turn("two")
    back = await agent.connect(sid, after=last_seen)
    replayed = [await back.next() for _ in missed]
    assert [f["seq"] for f in replayed] == [f["seq"] for f in missed]
    _, data = await agent.request("GET", "sessions", sid, "events", params={"after": last_seen})
    assert [e["seq"] for e in data["events"]] == [f["seq"] for f in missed]


async def test_sessions_crud(agent):
    sid = await agent.new_session("analysis")
    status, listed = await agent.request("GET", "sessions")
    assert status == 200 and sid in [s["id"] for s in listed["sessions"]]
    status, renamed = await agent.request("PATCH", "sessions", sid, body={"title": "renamed"})
    assert status == 200 and renamed["title"] == "renamed"
    status, _ = await agent.request("DELETE", "sessions", sid)
    assert status == 204
    status, err = await agent.request("GET", "sessions", sid)
    assert status == 404 and err["code"] == "not_found"


async def test_tools_route_lists_schemas_policy_and_stats(agent):
    status, data = await agent.request("GET", "tools")
    assert status == 200
    tools = {t["name"]: t for t in data["tools"]}
    for name in (
        "notebook_read",
        "notebook_insert_cell",
        "notebook_edit_cell",
        "notebook_delete_cell",
        "notebook_run_cell",
        "file_read",
        "file_write",
        "file_patch",
        "file_list",
        "shell_run",
    ):
        assert name in tools
    assert tools["shell_run"]["policy"] == "ask"
    assert tools["file_read"]["policy"] == "allow"
    assert tools["file_read"]["parameters"]["required"] == ["path"]
    assert tools["file_read"]["stats"]["calls"] == 0


async def test_voice_input_is_transcribed_through_litellm(agent, llm, jp_fetch):
    from jupyter_agent.testing.scripted_llm import Transcript

    llm.script_transcription(Transcript("plot the sales by month"))
    boundary = "agentboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="voice.webm"\r\n'
            "Content-Type: audio/webm\r\n\r\n"
        ).encode()
        + b"\x1aE\xdf\xa3fake-webm-bytes"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await jp_fetch(
        "api",
        "agent",
        "transcribe",
        method="POST",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert json.loads(response.body)["text"] == "plot the sales by month"
    sent = llm.transcription_requests[0]
    assert sent["filename"] == "voice.webm" and sent["bytes"] == len(b"\x1aE\xdf\xa3fake-webm-bytes")
    status, err = await agent.request("POST", "transcribe", body="")
    assert status == 400 and "multipart" in err["message"]
