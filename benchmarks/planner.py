"""How close the planner's scheduler comes to the critical path of a task DAG, and what it costs per task.

A 20-task DAG (seeded random dependencies) whose tasks each call a ``sleep`` tool for a known duration. The
scripted model (zero delay, over real HTTP through litellm) answers the planning request with the DAG and
each task's turn with the sleep call, then a short answer. With ``max_parallel_tasks`` at least the DAG's
width, the ideal wall time is the critical path; everything above it is ours (scheduling, events, persistence
and the two model round trips per task).

Prints, per run: critical path, sum of durations, measured wall time (first task start -> last task end, and
prompt -> done), the ratio wall / critical path, the scheduler overhead per task ((wall - critical path) / tasks),
the start latency per task (its dependencies done -> it started) and its in-task overhead (task time - sleep).

    python benchmarks/planner.py --tasks 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_agent.engine.llm import LLMClient, preload_litellm
from jupyter_agent.engine.loop import AgentLoop
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.scheduler import Scheduler
from jupyter_agent.engine.session import SessionManager, Turn
from jupyter_agent.engine.types import ToolCall
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, object_schema, tool


@tool("sleep", "Wait a number of seconds.", object_schema(["seconds"], seconds={"type": "number"}))
async def sleep_tool(ctx: ToolContext, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds} s"


def make_dag(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` tasks, 0.1-0.5 s each; each depends on up to two earlier tasks (some on none)."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        earlier = [f"t{j}" for j in range(i)]
        deps = rng.sample(earlier, k=min(len(earlier), rng.choice([0, 0, 1, 1, 2])))
        seconds = round(rng.uniform(0.1, 0.5), 3)
        tasks.append(
            {
                "id": f"t{i}",
                "title": f"Sleep {seconds} s",
                "description": f"Call sleep with seconds={seconds}.",
                "depends_on": sorted(deps),
                "tools": ["sleep"],
                "notebooks": [],
                "estimate_s": seconds,
                "acceptance": "slept",
            }
        )
    return tasks


def critical_path(tasks: list[dict[str, Any]], seconds: dict[str, float] | None = None) -> float:
    """Longest path by the tasks' sleep durations (or by the given per-task seconds)."""
    finish: dict[str, float] = {}
    for t in tasks:  # made in dependency order
        took = seconds[t["id"]] if seconds else t["estimate_s"]
        finish[t["id"]] = max((finish[d] for d in t["depends_on"]), default=0.0) + took
    return max(finish.values())


def answer(durations: dict[str, float]):
    def step(body: dict[str, Any]) -> Reply:
        if body.get("response_format"):
            raise AssertionError("the planning reply is scripted separately")
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        task = prompt.split("Your task (id: ", 1)[1].split(")", 1)[0]
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=f"{task} done")
        return Reply(tool_calls=[ToolCallSpec("sleep", {"seconds": durations[task]})])

    return step


async def run_once(llm: ScriptedLLM, tasks: list[dict[str, Any]], parallel: int, db: Path) -> dict[str, Any]:
    llm.reset()
    llm.script(Reply(text=json.dumps({"tasks": tasks})))
    llm.default = answer({t["id"]: t["estimate_s"] for t in tasks})
    client = LLMClient(model="openai/scripted", options={"api_base": llm.base_url, "api_key": "sk-bench"})

    def context_factory(turn: Turn, call: ToolCall) -> ToolContext:
        return ToolContext(session_id=turn.session.id, root_dir=db.parent, call_id=call.id)

    store = Store(db)
    loop = AgentLoop(client, ToolRouter([sleep_tool]), context_factory)
    sessions = SessionManager(store, loop)
    sessions.planner = Scheduler(loop, store, max_parallel_tasks=parallel)
    session = sessions.create()
    finished = asyncio.Event()
    events: list[dict[str, Any]] = []

    def watch(event: dict[str, Any]) -> None:
        events.append({**event, "at": time.perf_counter()})
        if event["type"] in ("done", "error"):
            finished.set()

    session.subscribe(watch, after=None)
    sent = time.perf_counter()
    session.submit("Run the benchmark DAG", plan=True, auto=True)
    await asyncio.wait_for(finished.wait(), 300)
    done = time.perf_counter()
    await sessions.close()
    store.close()
    end = events[-1]
    assert end["type"] == "done", end
    running_at = next(e["at"] for e in events if e["type"] == "plan" and e["status"] == "running")
    started = {e["id"]: e["at"] for e in events if e["type"] == "task_update" and e["state"] == "running"}
    ended = {e["id"]: e["at"] for e in events if e["type"] == "task_update" and e["state"] == "done"}
    latency = []
    for t in tasks:
        ready = max((ended[d] for d in t["depends_on"]), default=running_at)
        latency.append((started[t["id"]] - ready) * 1000)
    in_task = [(ended[t["id"]] - started[t["id"]] - t["estimate_s"]) * 1000 for t in tasks]
    model_ms: dict[str, float] = {t["id"]: 0.0 for t in tasks}
    for e in events:
        if e["type"] == "usage" and e.get("task"):
            model_ms[e["task"]] += e["latency_ms"]
    planning = running_at - sent
    return {
        "planning": planning,
        "model": [model_ms[t["id"]] for t in tasks],
        "cp_measured": critical_path(tasks, {i: ended[i] - started[i] for i in started}),
        "wall": max(ended.values()) - min(started.values()),
        "total": done - sent,
        "latency": latency,
        "in_task": in_task,
        "events": len(events),
    }


async def main(n: int, runs: int, parallel: int, seed: int) -> None:
    await asyncio.wrap_future(preload_litellm())
    tasks = make_dag(n, seed)
    cp, total = critical_path(tasks), sum(t["estimate_s"] for t in tasks)
    llm = ScriptedLLM().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await run_once(
                llm, tasks, parallel, Path(tmp) / "warm.db"
            )  # the first calls pay for lazy imports
            results = [await run_once(llm, tasks, parallel, Path(tmp) / f"run{i}.db") for i in range(runs)]
    finally:
        llm.stop()
    roots = sum(not t["depends_on"] for t in tasks)
    print(
        f"planner benchmark: {n} tasks ({roots} without dependencies), max_parallel_tasks={parallel}, seed {seed}"
    )
    print(f"  critical path            {cp * 1000:9.1f} ms")
    print(
        f"  sum of durations         {total * 1000:9.1f} ms   (serial time; {total / cp:.2f}x the critical path)"
    )
    for i, r in enumerate(results, 1):
        overhead = (r["wall"] - cp) * 1000 / n
        gaps = (r["wall"] - r["cp_measured"]) * 1000 / n
        print(
            f"  run {i}: wall {r['wall'] * 1000:7.1f} ms   wall/critical {r['wall'] / cp:5.3f}"
            f"   (wall - critical)/task {overhead:6.2f} ms   planning {r['planning'] * 1000:6.1f} ms"
            f"   prompt -> done {r['total'] * 1000:7.1f} ms"
        )
        print(
            f"         critical path over measured task times {r['cp_measured'] * 1000:7.1f} ms:"
            f" scheduling gaps (wall - it)/task {gaps:6.2f} ms   events {r['events']}"
        )
    latency = [x for r in results for x in r["latency"]]
    in_task = [x for r in results for x in r["in_task"]]
    model = [x for r in results for x in r["model"]]
    print(
        f"  task start latency (deps done -> started): median {statistics.median(latency):6.2f} ms"
        f"   max {max(latency):6.2f} ms"
    )
    print(
        f"  in-task overhead (task time - sleep; 2 model calls over HTTP): median {statistics.median(in_task):6.2f} ms"
        f"   max {max(in_task):6.2f} ms"
    )
    print(
        f"     of which the 2 model calls (litellm + scripted server): median {statistics.median(model):6.2f} ms"
        f"   max {max(model):6.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=20, help="max_parallel_tasks")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.runs, args.parallel, args.seed))
