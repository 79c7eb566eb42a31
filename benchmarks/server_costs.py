"""The server's own costs, around the model: start, end of a turn, CPU, and a repeated browser_analyze.

Starts the Jupyter server with the extension in a subprocess and the scripted LLM (zero delay) in this
process, talks to it over real WebSockets, and prints p50/p90 of:

- first message right after start: prompt -> first token and -> ``done``, the prompt sent (a) as soon as
  ``/api/status`` answers, (b) as soon as ``/api/agent/health`` says ``llm_ready`` (one fresh server each);
- the model's last chunk (``[DONE]`` written by the scripted server) -> ``done`` frame at the client (both
  ``time.perf_counter()`` of this process); at zero delay the whole answer comes as one burst, so this holds
  the processing of every chunk; a second series paces the chunks 10 ms apart to time the end alone;
- server CPU per warm message: ``/proc/<pid>/stat`` utime + stime over N prompts / N, a new conversation
  every 10 prompts (the server's idle CPU over the same wall time is printed beside it);
- ``browser_analyze`` of the same page, one call per turn: the client's ``tool_call`` -> ``tool_result``
  frames, the first call against the repeated ones (Chromium, a page served on 127.0.0.1).

Aims (issue #14): first message <= 300 ms, last chunk -> done <= 5 ms, <= 20 ms CPU per warm message,
repeated browser_analyze <= 50 ms.

    .venv/bin/python benchmarks/server_costs.py --n 50 --starts 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.processes import cpu_seconds
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec

ANSWER = "Hello there, how can I help?"
PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sales dashboard</title>
<meta name="description" content="Monthly sales"></head><body><h1>Revenue</h1>
<p>Revenue grew 12% in March.</p><img src="/chart.svg" width="40" height="40">
<form><label>Search <input name="q"></label><button>Go</button></form></body></html>"""
CHART = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40"/></svg>'
PACED_CHUNKS = 0.01  # seconds between chunks for the paced end-of-turn measurement


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float], aim: float | None = None) -> str:
    verdict = "" if aim is None else f"   aim <= {aim:g} ms: {'met' if pct(values, 50) <= aim else 'MISSED'}"
    return (
        f"{name:<52} p50 {pct(values, 50):8.1f} ms   p90 {pct(values, 90):8.1f} ms   (n={len(values)})"
        + verdict
    )


class _Page(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body, mime = (CHART, "image/svg+xml") if self.path.startswith("/chart") else (PAGE, "text/html")
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Client:
    """One session's WebSocket; ``turn`` sends a prompt and collects frames (with arrival times) to its end."""

    def __init__(self, srv: JupyterServer) -> None:
        self.srv = srv

    async def open(self) -> Client:
        self.sid = self.srv.api("POST", "api/agent/sessions", {"title": "bench"})["id"]
        url = f"ws://127.0.0.1:{self.srv.port}/api/agent/sessions/{self.sid}/ws"
        request = HTTPRequest(url, headers={"Authorization": f"token {self.srv.token}"})
        self.conn = await websocket_connect(request)
        self.conn.protocol.set_nodelay(True)
        hello = json.loads(await self.conn.read_message())
        assert hello["type"] == "hello", hello
        return self

    async def turn(self, text: str = "hello") -> tuple[float, list[tuple[float, dict]]]:
        sent = time.perf_counter()
        await self.conn.write_message(json.dumps({"type": "prompt", "text": text}))
        frames = []
        while True:
            raw = await self.conn.read_message()
            now = time.perf_counter()
            frame = json.loads(raw)
            frames.append((now, frame))
            if frame["type"] == "approval_request":
                answer = {"type": "approve", "call_id": frame["call_id"], "decision": "once"}
                await self.conn.write_message(json.dumps(answer))
            if frame["type"] in ("done", "error"):
                assert frame["type"] == "done", frame
                return sent, frames

    def close(self) -> None:
        self.conn.close()


def first_of(frames: list[tuple[float, dict]], kind: str) -> float:
    return next(t for t, f in frames if f["type"] == kind)


def wait_ready(srv: JupyterServer, timeout: float = 120) -> float:
    """Poll the agent's health until it says the model client is ready; the seconds that took."""
    started = time.perf_counter()
    while not srv.api("GET", "api/agent/health").get("llm_ready"):
        if time.perf_counter() - started > timeout:
            raise RuntimeError("the agent did not report llm_ready")
        time.sleep(0.01)
    return time.perf_counter() - started


async def first_messages(llm: ScriptedLLM, starts: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        k: [] for k in ("status_token", "status_done", "ready_token", "ready_done")
    }
    out["ready_after_status"] = []
    out["server_start"] = []
    for _ in range(starts):
        for when in ("status", "ready"):
            with JupyterServer(llm_base_url=llm.base_url) as srv:
                out["server_start"].append(srv.start_seconds * 1000)
                if when == "ready":
                    out["ready_after_status"].append(wait_ready(srv) * 1000)
                client = await Client(srv).open()
                sent, frames = await client.turn()
                client.close()
                out[f"{when}_token"].append((first_of(frames, "token") - sent) * 1000)
                out[f"{when}_done"].append((first_of(frames, "done") - sent) * 1000)
    return out


async def warm_messages(llm: ScriptedLLM, n: int) -> dict[str, list[float]]:
    with JupyterServer(llm_base_url=llm.base_url) as srv:
        wait_ready(srv)
        client = await Client(srv).open()
        for _ in range(5):  # first calls of this server: litellm's and our own caches fill
            await client.turn()
        done_lag, turn_ms = [], []
        pid = srv.proc.pid
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        for i in range(n):
            if i and i % 10 == 0:  # a fresh conversation now and then: transcripts stay short
                client.close()
                client = await Client(srv).open()
            before = len(llm.last_chunk_times)
            sent, frames = await client.turn()
            done_at = first_of(frames, "done")
            done_lag.append((done_at - llm.last_chunk_times[before]) * 1000)
            turn_ms.append((done_at - sent) * 1000)
        cpu1, wall1 = cpu_seconds(pid), time.perf_counter()
        # The same with the chunks paced (as a real model sends them): the server is idle when the last one
        # comes, so this is the end of a turn alone, not the processing of a burst of chunks.
        llm.chunk_delay = PACED_CHUNKS
        paced_lag = []
        try:
            for i in range(max(n // 2, 1)):
                if i % 10 == 0:
                    client.close()
                    client = await Client(srv).open()
                before = len(llm.last_chunk_times)
                _sent, frames = await client.turn()
                paced_lag.append((first_of(frames, "done") - llm.last_chunk_times[before]) * 1000)
        finally:
            llm.chunk_delay = 0.0
        client.close()
        await asyncio.sleep(0.2)
        idle0 = cpu_seconds(pid)
        await asyncio.sleep(min(wall1 - wall0, 5.0))
        idle_rate = (cpu_seconds(pid) - idle0) / min(wall1 - wall0, 5.0)
    return {
        "done_lag": done_lag,
        "paced_done_lag": paced_lag,
        "turn": turn_ms,
        "cpu_per_message": [(cpu1 - cpu0) / n * 1000],
        "idle_cpu_per_message_time": [idle_rate * (wall1 - wall0) / n * 1000],
    }


async def repeated_analyze(llm: ScriptedLLM, repeats: int) -> dict[str, list[float]]:
    site = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{site.server_port}"
    url = f"http://{address}/dashboard"
    config = {"JupyterAgent": {"allowed_networks": [address], "browser_executable": "/usr/bin/chromium"}}
    out: dict[str, list[float]] = {"first": [], "repeat": [], "first_tool": [], "repeat_tool": []}
    try:
        with JupyterServer(llm_base_url=llm.base_url, config=config) as srv:
            wait_ready(srv)
            client = await Client(srv).open()
            for i in range(repeats + 1):
                llm.script(
                    Reply(tool_calls=[ToolCallSpec("browser_analyze", {"url": url})]), Reply(text="ok")
                )
                _sent, frames = await client.turn("analyse the dashboard")
                result = next(f for _, f in frames if f["type"] == "tool_result")
                assert result["ok"], result["content"]
                key = "first" if i == 0 else "repeat"
                out[key].append((first_of(frames, "tool_result") - first_of(frames, "tool_call")) * 1000)
                out[f"{key}_tool"].append(result["duration_ms"])
            client.close()
    finally:
        site.shutdown()
    return out


async def main(n: int, starts: int, repeats: int, parts: set[str]) -> None:
    load = os.getloadavg()
    llm = ScriptedLLM().start()
    llm.default = Reply(text=ANSWER)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        if "start" in parts:
            results["start"] = await first_messages(llm, starts)
        if "warm" in parts:
            results["warm"] = await warm_messages(llm, n)
        if "browser" in parts:
            results["browser"] = await repeated_analyze(llm, repeats)
    finally:
        llm.stop()
    print(
        f"server_costs: scripted LLM at zero delay, loopback; load average {load[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if "start" in results:
        r = results["start"]
        print(row("server start (until /api/status answers)", r["server_start"]))
        print(row("first message as /api/status answers: first token", r["status_token"], 300))
        print(row("first message as /api/status answers: done", r["status_done"]))
        print(row("health llm_ready, after /api/status answers", r["ready_after_status"]))
        print(row("first message once llm_ready: first token", r["ready_token"], 300))
        print(row("first message once llm_ready: done", r["ready_done"]))
    if "warm" in results:
        r = results["warm"]
        print(row("model's last chunk -> done frame at the client", r["done_lag"], 5))
        print(row(f"  the same, chunks {PACED_CHUNKS * 1000:g} ms apart", r["paced_done_lag"], 5))
        print(row("warm message: prompt -> done", r["turn"]))
        print(
            f"{'server CPU per warm message':<52} {r['cpu_per_message'][0]:8.1f} ms   aim <= 20 ms: "
            f"{'met' if r['cpu_per_message'][0] <= 20 else 'MISSED'}"
        )
        print(
            f"{'  of which idle (same wall time, no messages)':<52} {r['idle_cpu_per_message_time'][0]:8.1f} ms"
        )
    if "browser" in results:
        r = results["browser"]
        print(row("browser_analyze, first: tool_call -> tool_result", r["first"]))
        print(row("browser_analyze, repeated: tool_call -> tool_result", r["repeat"], 50))
        print(row("  of which in the tool (duration_ms), first", r["first_tool"]))
        print(row("  of which in the tool (duration_ms), repeated", r["repeat_tool"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50, help="warm messages timed (default 50)")
    parser.add_argument(
        "--starts", type=int, default=3, help="server starts per first-message case (default 3)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="repeated browser_analyze turns (default 10)")
    parser.add_argument(
        "--only",
        default="start,warm,browser",
        help="comma-separated parts: start, warm, browser (default all)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, args.starts, args.repeats, set(args.only.split(","))))
