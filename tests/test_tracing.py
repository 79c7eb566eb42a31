"""OpenTelemetry traces of a turn (into an in-memory exporter): the turn's span, linked to the request that
asked, with a child span per model call and per tool call; and structured JSON logs with the same ids."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jupyter_agent.engine.logs import use_json_logs
from jupyter_agent.engine.tracing import Tracing, origin_of
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, object_schema, tool

REQUEST_TRACE = "0af7651916cd43dd8448eb211c80319c"
REQUEST_SPAN = "b7ad6b7169203331"


@tool("lookup", "Look a word up.", object_schema(["word"], word={"type": "string"}))
async def lookup(ctx: ToolContext, word: str) -> str:
    logging.getLogger("jupyter_agent.tools.lookup").info("looking up %s", word)
    return f"{word}: a small thing"


def traced_engine(engines, exporter: InMemorySpanExporter):
    engine = engines.engine(lookup)
    measurements = engine.router.measurements
    measurements.tracing = Tracing.to_exporter(exporter, batch=False)
    engine.sessions.measurements = measurements
    engine.sessions.runner.llm.measurements = measurements
    return engine


async def test_a_turn_exports_its_span_tree_linked_to_the_request(engines, llm):
    exporter = InMemorySpanExporter()
    engine = traced_engine(engines, exporter)
    llm.script(
        Reply(tool_calls=[ToolCallSpec("lookup", {"word": "atom"}, id="call_1")]), Reply(text="Small.")
    )
    session, watch = engine.open()
    origin = origin_of({"traceparent": f"00-{REQUEST_TRACE}-{REQUEST_SPAN}-01"})
    turn = session.submit("what is an atom?", origin=origin)
    assert (await watch.end_of(turn))["type"] == "done"

    spans = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == ["agent.model_call", "agent.tool_call", "agent.turn"]
    (root,) = by_name["agent.turn"]
    assert root.parent is None
    assert root.attributes["agent.session"] == session.id and root.attributes["agent.turn"] == turn.id
    assert root.attributes["agent.outcome"] == "completed"
    (link,) = root.links
    assert format(link.context.trace_id, "032x") == REQUEST_TRACE
    assert format(link.context.span_id, "016x") == REQUEST_SPAN
    assert len(by_name["agent.model_call"]) == 2
    for child in [*by_name["agent.model_call"], *by_name["agent.tool_call"]]:
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    for call in by_name["agent.model_call"]:
        assert call.attributes["agent.outcome"] == "ok" and call.attributes["agent.model"]
        assert call.attributes["gen_ai.usage.output_tokens"] > 0 and call.attributes["agent.ttft_ms"] >= 0
    (call,) = by_name["agent.tool_call"]
    assert call.attributes["agent.tool"] == "lookup" and call.attributes["agent.call_id"] == "call_1"
    assert call.attributes["agent.outcome"] == "ok"


async def test_json_logs_carry_the_session_turn_and_call(engines, llm):
    stream = io.StringIO()
    handler = use_json_logs("jupyter_agent.tools.lookup", stream)
    try:
        engine = traced_engine(engines, InMemorySpanExporter())
        llm.script(Reply(tool_calls=[ToolCallSpec("lookup", {"word": "ion"}, id="call_9")]), Reply(text="A."))
        session, watch = engine.open()
        turn = session.submit("ion?")
        await watch.end_of(turn)
    finally:
        logger = logging.getLogger("jupyter_agent.tools.lookup")
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "looking up ion" and entry["level"] == "info"
    assert (entry["session"], entry["turn"], entry["call"]) == (session.id, turn.id, "call_9")


def test_no_trace_context_means_no_link():
    assert origin_of({}, None, {"traceparent": ""}) is None
    assert origin_of({"traceparent": "00-a-b-01", "tracestate": "x=1"}) == {
        "traceparent": "00-a-b-01",
        "tracestate": "x=1",
    }
