"""The Jupyter server, two kernels' magics and a CLI run on one ``agent.db`` at once.

Each writes its own sessions while the server reads all of them (the session list, their events, a live
WebSocket on a kernel's running session), all interleaved. Afterwards every session's log is whole: numbered
1..n with no gap, every turn ended exactly once and normally, nothing marked interrupted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import websocket

from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply
from tests.test_magics import kernel_env, start_kernel, stop_kernel
from tests.test_store_processes import check_log

TURNS = 3  # per kernel, and from the server's chat


def session_socket(srv: JupyterServer, session_id: str) -> websocket.WebSocket:
    url = f"ws://127.0.0.1:{srv.port}/api/agent/sessions/{session_id}/ws?token={srv.token}"
    return websocket.create_connection(url, timeout=60)


def frames_until(ws: websocket.WebSocket, done: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(ws.recv())
        frames.append(frame)
        if done(frame):
            return frames


def test_server_kernels_and_cli_share_one_store_without_corrupting_any_session(llm) -> None:
    llm.chunk_delay = 0.005
    llm.default = Reply(text="word " * 60, chunk_size=4)  # each turn streams for a while: they overlap
    with JupyterServer(llm_base_url=llm.base_url) as srv:
        env = kernel_env(srv.base, llm)  # the server's config and data dirs: the same agent.db
        kernels = [start_kernel(env, str(srv.root)) for _ in range(2)]
        try:
            for k in kernels:
                assert k.run("%load_ext jupyter_agent").status == "ok"
            first, second = kernels
            assert first.run("%%agent\nkernel 0 question 0").status == "ok"

            # The kernel's session, opened in the server: read-only (the kernel is alive), replayed.
            [kernel_session] = srv.api("GET", "api/agent/sessions")["sessions"]
            assert kernel_session["writer"]["role"] == "kernel" and kernel_session["read_only"]
            watch = session_socket(srv, kernel_session["id"])
            hello = json.loads(watch.recv())
            assert hello["read_only"] is True and "a kernel (pid" in hello["message"]
            watch.send(json.dumps({"type": "prompt", "text": "may I?"}))
            replayed = frames_until(watch, lambda f: f["type"] == "error" and "seq" not in f)
            assert replayed[-1]["code"] == "read_only"
            assert replayed[-2]["seq"] == hello["last_seq"] and replayed[-2]["type"] == "done"

            # Now everyone writes at once: both kernels, a CLI run and the server's own chat.
            cells = [(first, [first.start(f"%%agent\nkernel 0 question {i}") for i in range(1, TURNS)])]
            cells.append((second, [second.start(f"%%agent\nkernel 1 question {i}") for i in range(TURNS)]))
            cli = subprocess.Popen(
                [sys.executable, "-m", "jupyter_agent.cli", "run", "a CLI goal", "--notebook", "c.ipynb"],
                env=env,
                cwd=srv.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            mine = srv.api("POST", "api/agent/sessions", {"title": "server chat"})["id"]
            chat = session_socket(srv, mine)
            assert json.loads(chat.recv())["read_only"] is False
            for i in range(TURNS):
                chat.send(json.dumps({"type": "prompt", "text": f"server question {i}"}))
                frames_until(chat, lambda f: f["type"] in TERMINAL_EVENTS)
                for s in srv.api("GET", "api/agent/sessions")["sessions"]:  # reads between the writes
                    srv.api("GET", f"api/agent/sessions/{s['id']}/events?after=0")
            chat.close()

            # The kernel's new turns reached the server's client live, in order, after the replay.
            ended = 0

            def last_turn_ended(frame: dict[str, Any]) -> bool:
                nonlocal ended
                ended += frame["type"] in TERMINAL_EVENTS
                return ended == TURNS - 1

            live = frames_until(watch, last_turn_ended)
            watch.close()
            seqs = [f["seq"] for f in live]
            assert seqs == list(range(hello["last_seq"] + 1, hello["last_seq"] + 1 + len(live)))
            assert any(f["type"] == "token" for f in live)

            for k, msg_ids in cells:
                for msg_id in msg_ids:
                    reply = k.reply(msg_id, timeout=120)
                    assert reply["content"]["status"] == "ok", reply["content"]
            _out, err = cli.communicate(timeout=120)
            assert cli.returncode == 0, err
            sessions = srv.api("GET", "api/agent/sessions")["sessions"]
        finally:
            for k in kernels:
                stop_kernel(k)
        logs = check_log(Path(srv.base) / "agent.db")

    roles = sorted(s["writer"]["role"] for s in sessions)
    assert roles == ["cli", "kernel", "kernel", "server"]
    assert len(logs) == 4
    for events in logs.values():
        turns = [e["turn"] for e in events if e["type"] == "message" and e.get("role") == "user"]
        ends = [e for e in events if e["type"] in TERMINAL_EVENTS]
        assert [e["turn"] for e in ends] == turns, "each turn ends exactly once, in order"
        assert all(e["type"] == "done" and e["reason"] == "completed" for e in ends), ends
        assert not any(e.get("code") == "interrupted" for e in events)
    assert sum(len(t) for t in logs.values()) > 4 * TURNS * 10
