"""The server stops on SIGTERM even after collaborative clients joined rooms (jupyter-collaboration #161)."""

from __future__ import annotations

import json

import nbformat
from pycrdt import Provider
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import TornadoChannel, wait_for


async def test_server_stops_on_sigterm_after_a_room_was_joined_and_the_agent_edited(llm):
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": "t.ipynb", "source": "1 + 1"})]),
        Reply(text="done"),
    )
    with JupyterServer(llm_base_url=llm.base_url, stop_timeout=30) as srv:
        nbformat.write(nbformat.v4.new_notebook(), srv.root / "t.ipynb")
        session = srv.api("PUT", "api/collaboration/session/t.ipynb", {"format": "json", "type": "notebook"})
        room = f"json:notebook:{session['fileId']}"
        headers = {"Authorization": f"token {srv.token}"}
        conn = await websocket_connect(
            HTTPRequest(
                f"ws://127.0.0.1:{srv.port}/api/collaboration/room/{room}?sessionId={session['sessionId']}",
                headers=headers,
            )
        )
        from jupyter_ydoc import YNotebook

        doc = YNotebook()
        async with Provider(doc.ydoc, TornadoChannel(conn, room)):
            sid = srv.api("POST", "api/agent/sessions", {})["id"]
            ws = await websocket_connect(
                HTTPRequest(f"ws://127.0.0.1:{srv.port}/api/agent/sessions/{sid}/ws", headers=headers)
            )
            await ws.write_message(json.dumps({"type": "prompt", "text": "add a cell"}))
            while json.loads(await ws.read_message())["type"] not in ("done", "error"):
                pass
            await wait_for(lambda: any(str(c["source"]) == "1 + 1" for c in doc.ycells))
            ws.close()
            # Stop while the collaborator is still connected, as when people leave their tabs open.
            srv.stop()
        conn.close()
        assert not srv.killed, f"the server hung on shutdown:\n{srv.log_path.read_text()[-2000:]}"
        assert srv.proc.returncode is not None
