"""Time to first token through the agent server, and how much of it is ours.

Starts a Jupyter server with the extension and the scripted LLM (zero delay), sends N prompts over the
session WebSocket, and prints p50/p90 of:
- client: prompt sent -> first token frame received;
- model: the LLM server's own request received -> first chunk written;
- overhead: their difference (our server + litellm + loopback);
- plain litellm's overhead for comparison (litellm.acompletion straight to the same server);
- the first message after start (sent as soon as the server answers, and once litellm is warm);
- server start time with and without the extension, and shutdown time.

    python benchmarks/first_token.py --n 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.engine.loop import SYSTEM_PROMPT
from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return f"{name:<48} p50 {pct(values, 50):8.2f} ms   p90 {pct(values, 90):8.2f} ms   (n={len(values)})"


def api(srv: JupyterServer, method: str, path: str, body: dict | None = None) -> dict:
    return srv.api(method, path, body)


async def connect(srv: JupyterServer, session_id: str):
    url = f"ws://127.0.0.1:{srv.port}/api/agent/sessions/{session_id}/ws"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {srv.token}"}))
    conn.protocol.set_nodelay(True)  # as browsers do: small frames go out at once
    hello = json.loads(await conn.read_message())
    assert hello["type"] == "hello"
    return conn


async def prompt_once(conn, llm: ScriptedLLM) -> tuple[float, float]:
    """(client ms to first token, model ms from request to first chunk) for one prompt."""
    before = len(llm.first_chunk_times)
    sent = time.perf_counter()
    await conn.write_message(json.dumps({"type": "prompt", "text": "hello"}))
    first = None
    while True:
        frame = json.loads(await conn.read_message())
        if frame["type"] == "token" and first is None:
            first = time.perf_counter()
        if frame["type"] in ("done", "error"):
            assert frame["type"] == "done", frame
            break
    index = before  # this prompt's request is the next one the scripted server recorded
    model_ms = (llm.first_chunk_times[index] - llm.request_times[index]) * 1000
    return (first - sent) * 1000, model_ms


async def plain_litellm(llm: ScriptedLLM, n: int, tools: list[dict]) -> list[float]:
    """The same call the agent makes (same tools and options), straight from litellm."""
    import litellm

    out = []
    for _ in range(n + 3):
        before = len(llm.first_chunk_times)
        sent = time.perf_counter()
        stream = await litellm.acompletion(
            model="openai/scripted",
            api_base=llm.base_url,
            api_key="sk-bench",
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "hello"}],
            stream=True,
            tools=tools,
            stream_options={"include_usage": True},
            max_retries=0,
        )
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        model_ms = (llm.first_chunk_times[before] - llm.request_times[before]) * 1000
        out.append((first - sent) * 1000 - model_ms)
    return out[3:]  # the first calls pay for lazy imports


async def main(n: int) -> None:
    llm = ScriptedLLM().start()
    llm.default = Reply(text="Hello there, how can I help?")
    try:
        with JupyterServer(agent=False, llm_base_url=llm.base_url) as plain:
            pass
        # First message sent the moment the server answers (litellm may still be importing).
        with JupyterServer(agent=True, llm_base_url=llm.base_url) as srv:
            sid = api(srv, "POST", "api/agent/sessions", {"title": "bench"})["id"]
            conn = await connect(srv, sid)
            immediate, _ = await prompt_once(conn, llm)
            conn.close()
        with JupyterServer(agent=True, llm_base_url=llm.base_url) as srv:
            deadline = time.perf_counter() + 60
            while not api(srv, "GET", "api/agent/health")["llm_ready"] and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            tools = [
                {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")}}
                for t in api(srv, "GET", "api/agent/tools")["tools"]
            ]
            sid = api(srv, "POST", "api/agent/sessions", {"title": "bench"})["id"]
            conn = await connect(srv, sid)
            warm_first, _ = await prompt_once(conn, llm)
            conn.close()
            # Each timed prompt opens a new conversation, so the model call matches the plain litellm
            # baseline (system prompt + one user message + the same tools) message for message.
            client, model = [], []
            for _ in range(n):
                sid = api(srv, "POST", "api/agent/sessions", {"title": "bench"})["id"]
                conn = await connect(srv, sid)
                c, m = await prompt_once(conn, llm)
                conn.close()
                client.append(c)
                model.append(m)
            # The same prompt again and again in one conversation: the transcript grows each time.
            sid = api(srv, "POST", "api/agent/sessions", {"title": "long"})["id"]
            conn = await connect(srv, sid)
            growing = [(await prompt_once(conn, llm))[0] for _ in range(n)]
            conn.close()
        baseline = await plain_litellm(llm, n, tools)
    finally:
        llm.stop()
    overhead = [c - m for c, m in zip(client, model, strict=True)]
    print(f"first_token benchmark: {n} prompts, scripted LLM at zero delay, loopback")
    print(row("client: prompt -> first token", client))
    print(row("model: request -> first chunk (LLM server)", model))
    print(row("overhead (client - model)", overhead))
    print(row("plain litellm overhead (same server)", baseline))
    print(f"{'our overhead beyond plain litellm':<48} p50 {pct(overhead, 50) - pct(baseline, 50):8.2f} ms")
    print(row(f"same conversation, {n} turns growing", growing))
    print(f"{'first message, sent as the server answers':<48} {immediate:8.1f} ms")
    print(f"{'first message, once litellm is warm':<48} {warm_first:8.1f} ms")
    print(f"{'server start without the extension':<48} {plain.start_seconds * 1000:8.0f} ms")
    print(f"{'server start with the extension':<48} {srv.start_seconds * 1000:8.0f} ms")
    print(f"{'server stop (SIGTERM) with the extension':<48} {srv.stop_seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50, help="prompts to time (default 50)")
    asyncio.run(main(parser.parse_args().n))
