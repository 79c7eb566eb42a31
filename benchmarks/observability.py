"""What metrics and tracing cost per turn.

Runs the in-process engine against the scripted model over real HTTP (litellm, loopback): each turn makes a
tool call and then answers (two model calls, one tool call). Turns alternate, in blocks, between

- off: measurements kept for the router only (no Prometheus exporter, no tracing), as in a kernel;
- on: Prometheus counters/histograms fed and OpenTelemetry spans made for every turn, model call and tool
  call (spans batched to an exporter that drops them, as an OTLP exporter would send them off-thread);

and prints p50/p95 of turn time (prompt submitted -> done event) for each. Turn times on a shared machine vary
by more than the instrumentation costs, so it also replays one turn's recordings (1 turn, 2 model calls,
1 tool call, their spans and counters) many times and prints their cost per turn, and that as a share of the
median turn.

    python benchmarks/observability.py --turns 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.loop import AgentLoop
from jupyter_agent.engine.metrics import Measurements
from jupyter_agent.engine.prometheus import PrometheusExporter
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import SessionManager, Turn
from jupyter_agent.engine.tracing import Tracing
from jupyter_agent.engine.types import TERMINAL_EVENTS, ToolCall, Usage
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, object_schema, tool

BLOCK = 10  # turns in a row with the same setting, then the other


class DropSpans(SpanExporter):
    """Receives the batches (as an OTLP exporter would) and drops them: no collector in the measurement."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@tool("lookup", "Look a word up.", object_schema(["word"], word={"type": "string"}))
async def lookup(ctx: ToolContext, word: str) -> str:
    return f"{word}: a small thing"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def instrumented(on: bool, tracing: Tracing, spans: bool = True) -> Measurements:
    measurements = Measurements()
    if on:
        PrometheusExporter(measurements)
        measurements.tracing = tracing if spans else None
    return measurements


def engine(llm: ScriptedLLM, measurements: Measurements, root: Path) -> SessionManager:
    client = LLMClient(model="openai/scripted", options={"api_base": llm.base_url, "api_key": "sk-bench"})
    client.measurements = measurements
    router = ToolRouter([lookup], measurements=measurements)

    def context(turn: Turn, call: ToolCall) -> ToolContext:
        return ToolContext(session_id=turn.session.id, root_dir=root, call_id=call.id)

    manager = SessionManager(Store(":memory:"), AgentLoop(client, router, context))
    manager.measurements = measurements
    return manager


async def one_turn(manager: SessionManager, llm: ScriptedLLM) -> float:
    """Seconds from submitting a prompt to its done event (a tool call, then an answer)."""
    llm.script(Reply(tool_calls=[ToolCallSpec("lookup", {"word": "atom"})]), Reply(text="It is small."))
    session = manager.create()
    ended = asyncio.Event()
    session.subscribe(lambda e: ended.set() if e["type"] in TERMINAL_EVENTS else None, after=None)
    start = time.perf_counter()
    session.submit("what is an atom?")
    await ended.wait()
    return time.perf_counter() - start


def recordings_per_turn(measurements: Measurements) -> None:
    """Exactly what one benchmark turn records: the turn, two model calls, one tool call and its run."""
    turn = measurements.turn("s", "t", "bench", None)
    turn.context.run(_inside_turn, measurements)
    turn.finish("completed")


def _inside_turn(measurements: Measurements) -> None:
    usage = Usage("openai/scripted", 120, 12, None, 3.0, 1.0)
    for _ in range(2):
        measurements.model_call("openai/scripted").finish(usage)
    call = measurements.tool_call("lookup", "c1")
    measurements.tool_ran("lookup", True, 0.0002, False, "ok")
    call.finish("ok")


def recording_cost_us(on: bool, tracing: Tracing, spans: bool = True, n: int = 5000) -> float:
    measurements = instrumented(on, tracing, spans)
    measurements.track("lookup", 3, 30.0)
    start = time.perf_counter()
    for _ in range(n):
        recordings_per_turn(measurements)
    return (time.perf_counter() - start) / n * 1e6


async def main(turns: int) -> None:
    tracing = Tracing.to_exporter(DropSpans())
    root = Path.cwd()
    times: dict[bool, list[float]] = {False: [], True: []}
    with ScriptedLLM() as llm:
        managers = {on: engine(llm, instrumented(on, tracing), root) for on in (False, True)}
        for on in (False, True):  # warm up litellm and both engines
            for _ in range(5):
                await one_turn(managers[on], llm)
        for n in range(turns):
            on = (n // BLOCK) % 2 == 1
            times[on].append(await one_turn(managers[on], llm))
        for manager in managers.values():
            await manager.close()
    tracing.shutdown()
    print(f"turn time (scripted model over HTTP; 2 model calls + 1 tool call per turn; {turns} turns)")
    for on, label in ((False, "metrics+tracing off"), (True, "metrics+tracing on")):
        ms = [t * 1000 for t in times[on]]
        print(f"  {label:<22} p50 {pct(ms, 50):7.2f} ms   p95 {pct(ms, 95):7.2f} ms   (n={len(ms)})")
    delta = pct(times[True], 50) - pct(times[False], 50)
    print(
        f"  difference of medians  {delta * 1000:+7.2f} ms ({delta / pct(times[False], 50):+.1%}; noise included)"
    )
    off_us, on_us = recording_cost_us(False, tracing), recording_cost_us(True, tracing)
    metrics_us = recording_cost_us(True, tracing, spans=False)
    median_us = pct(times[False], 50) * 1e6
    print("recording one turn (turn + 2 model calls + 1 tool call), replayed 5,000 times")
    print(f"  router statistics only  {off_us:7.1f} us per turn")
    print(
        f"  + Prometheus            {metrics_us:7.1f} us per turn ({(metrics_us - off_us) / median_us:.2%} of the median turn)"
    )
    print(f"  + Prometheus + spans    {on_us:7.1f} us per turn")
    print(
        f"  added by metrics+tracing {on_us - off_us:6.1f} us per turn = {(on_us - off_us) / median_us:.2%} of the median turn"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--turns", type=int, default=300, help="measured turns (half with metrics+tracing on)"
    )
    asyncio.run(main(parser.parse_args().turns))
