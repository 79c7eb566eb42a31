"""Long sessions: does the cost of a turn stay flat as the conversation grows?

Runs ``--turns`` turns in one session against the scripted model (zero delay, real HTTP through litellm):
each turn calls a tool that prints ``--output`` characters, then answers. With the scripted model answering
at once, a turn's time is the engine's own overhead (building and fitting the request, litellm's request
transform, the stream). Prints p50 of the first and the last ten turns and their ratio, the largest request
in tokens, and how many times the conversation was summarised; ``--window 0`` sends the whole transcript
every time (no fitting), as before context fitting existed.

    .venv/bin/python benchmarks/long_session.py --turns 50 --output 20000 --window 8192
    .venv/bin/python benchmarks/long_session.py --turns 50 --output 20000 --window 0

``--embedded NAME`` runs the session on an embedded model instead (e.g. ``smollm2-135m``, installed by ``make
test``; ``qwen2.5-coder-1.5b`` by ``make lab``), its window its ``n_ctx``: each turn asks it to read a
``--output``-character file, and the run reports the turns that ended in an error (there must be none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_agent.engine.context import ContextWindow
from jupyter_agent.engine.llm import LLMClient, get_litellm
from jupyter_agent.engine.loop import AgentLoop
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import SessionManager
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, ToolResult, object_schema, tool


def make_tool(size: int) -> Any:
    @tool("table", "Print a table.", object_schema(["n"], n={"type": "integer"}))
    async def table(ctx: ToolContext, n: int) -> ToolResult:
        line = f"row of run {n}: " + "x" * 60 + "\n"
        return ToolResult((line * (size // len(line) + 1))[:size])

    return table


def answer(body: dict[str, Any]) -> Reply:
    if str(body["messages"][0]["content"]).startswith("Summarise the conversation"):
        return Reply(text="- the user ran the table tool many times")
    if body["messages"][-1]["role"] == "tool":
        return Reply(text="done")
    return Reply(tool_calls=[ToolCallSpec("table", {"n": 1})])


async def run(turns: int, size: int, window: int) -> None:
    llm = ScriptedLLM().start()
    llm.default = answer
    litellm = await get_litellm()
    try:
        client = LLMClient("openai/scripted", {"api_base": llm.base_url, "api_key": "sk-bench"}, retries=0)
        root = Path(tempfile.mkdtemp())
        loop = AgentLoop(
            client,
            ToolRouter([make_tool(size)]),
            lambda turn, call: ToolContext(session_id=turn.session.id, root_dir=root, call_id=call.id),
            context=ContextWindow(client, window) if window else None,
        )
        sessions = SessionManager(Store(":memory:"), loop)
        session = sessions.create()
        done = asyncio.Event()
        session.subscribe(lambda e: done.set() if e["type"] in ("done", "error") else None, after=None)
        times = []
        for n in range(turns):
            done.clear()
            start = time.perf_counter()
            session.submit(f"turn {n}")
            await done.wait()
            times.append((time.perf_counter() - start) * 1000)
        sizes = [litellm.token_counter(messages=b["messages"], tools=b.get("tools")) for b in llm.requests]
        first, last = statistics.median(times[:10]), statistics.median(times[-10:])
        compactions = sum(1 for e in sessions.store.iter_events(session.id, ("compaction",)))
        label = f"window {window:,} tokens" if window else "no fitting (whole transcript)"
        print(f"{label}: {turns} turns, {size:,}-character outputs")
        print(f"  turn p50, first 10: {first:7.1f} ms   last 10: {last:7.1f} ms   ratio {last / first:4.2f}x")
        print(f"  largest request: {max(sizes):,} tokens; summaries: {compactions}")
        await sessions.close()
    finally:
        llm.stop()


async def run_embedded(turns: int, size: int, name: str) -> None:
    from jupyter_agent.runtime import build_runtime

    root = Path(tempfile.mkdtemp())
    line = "a line of the log file, with some numbers 12345 67890 and words\n"
    (root / "big.txt").write_text((line * (size // len(line) + 1))[:size])
    data = Path(tempfile.mkdtemp())
    os.environ["JUPYTER_DATA_DIR"] = str(data)
    agent = build_runtime(
        root, overrides={"model": "", "local_model": name, "db_path": str(data / "a.db")}, role="cli"
    )
    try:
        session = agent.sessions.create("long session", owner=agent.user)
        times, errors = [], []
        for n in range(turns):
            start = time.perf_counter()
            final = await agent.run(session, f"Read big.txt and tell me its first word. (request {n})")
            times.append(time.perf_counter() - start)
            if final["type"] == "error":
                errors.append(f"turn {n}: {final.get('code')}: {final.get('message')}")
        compactions = sum(1 for e in agent.store.iter_events(session.id, ("compaction",)))
        print(f"embedded {name}: {turns} turns reading a {size:,}-character file")
        print(
            f"  turn p50 {statistics.median(times):.1f} s, max {max(times):.1f} s; summaries: {compactions}"
        )
        print(f"  turns ended in an error: {len(errors)}")
        for error in errors[:5]:
            print(f"    {error[:200]}")
    finally:
        await agent.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--output", type=int, default=20_000, help="characters each tool call prints")
    parser.add_argument("--window", type=int, default=8_192, help="context window in tokens; 0: no fitting")
    parser.add_argument(
        "--embedded", default="", help="run on this embedded model instead (e.g. smollm2-135m)"
    )
    args = parser.parse_args()
    if args.embedded:
        asyncio.run(run_embedded(args.turns, args.output, args.embedded))
    else:
        asyncio.run(run(args.turns, args.output, args.window))


if __name__ == "__main__":
    main()
