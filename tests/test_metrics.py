"""Prometheus metrics on Jupyter Server's own /metrics: a turn against the scripted model moves them, the
router's statistics come from the same measurements, and /metrics keeps the server's auth rules."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_agent.engine.metrics import Measurements
from jupyter_agent.engine.prometheus import PrometheusExporter
from jupyter_agent.engine.types import ToolCall
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from jupyter_agent.tools.base import ToolContext, object_schema, tool


async def scrape(jp_fetch) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every jupyter_agent_* sample on /metrics (fetched with the test's token), by name and labels."""
    response = await jp_fetch("metrics")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            if sample.name.startswith("jupyter_agent_"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, found), value in samples.items()
        if sample == name and set(labels.items()) <= set(found)
    )


async def test_a_turn_with_a_tool_call_moves_the_named_metrics(agent, llm, jp_fetch, jp_root_dir):
    (jp_root_dir / "notes.txt").write_text("the answer is 42\n")
    llm.script(
        Reply(tool_calls=[ToolCallSpec("file_read", {"path": "notes.txt"})]),
        Reply(text="It says 42."),
    )
    before = await scrape(jp_fetch)
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("what do my notes say?")
    assert frames[-1]["type"] == "done" and frames[-1]["reason"] == "completed"
    usage = [f for f in frames if f["type"] == "usage"]
    after = await scrape(jp_fetch)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("jupyter_agent_turns_total", outcome="completed") == 1
    assert moved("jupyter_agent_turn_duration_seconds_count", outcome="completed") == 1
    assert moved("jupyter_agent_model_calls_total", outcome="ok") == 2
    assert moved("jupyter_agent_tokens_total", kind="prompt") == sum(u["prompt_tokens"] for u in usage)
    assert moved("jupyter_agent_tokens_total", kind="completion") == sum(
        u["completion_tokens"] for u in usage
    )
    assert moved("jupyter_agent_time_to_first_token_seconds_count") == 2
    assert moved("jupyter_agent_tool_calls_total", tool="file_read", outcome="ok") == 1
    assert moved("jupyter_agent_tool_duration_seconds_count", tool="file_read", outcome="ok") == 1
    assert total(after, "jupyter_agent_websockets_open") >= 1
    assert total(after, "jupyter_agent_approvals_pending") == 0
    assert total(after, "jupyter_agent_tool_circuit_open", tool="file_read") == 0
    assert ("jupyter_agent_sessions_active", ()) in after
    assert total(after, "jupyter_agent_browser_contexts", state="pooled") == 0  # no browser started
    # The router's statistics are the same measurements: one call, its duration known.
    _, tools = await agent.request("GET", "tools")
    stats = {t["name"]: t["stats"] for t in tools["tools"]}["file_read"]
    assert stats["calls"] == 1 and stats["errors"] == 0 and stats["p50_ms"] is not None


async def test_metrics_are_refused_without_a_token(agent, jp_http_port, jp_base_url, jp_fetch):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}metrics"
    try:
        await AsyncHTTPClient().fetch(url)
    except HTTPClientError as err:
        status = err.code
    else:
        status = 200
    assert status == 403
    assert (await jp_fetch("metrics")).code == 200  # with the token, as for every other route


async def test_approvals_record_their_wait_and_pending_count(engines, llm, tmp_path):
    """A call that asks: the pending gauge counts it while it waits; its wait lands in the histogram."""

    @tool("guarded_note", "Write a note.", object_schema(["text"], text={"type": "string"}), policy="ask")
    async def guarded_note(ctx: ToolContext, text: str) -> str:
        return f"noted {text}"

    engine = engines.engine(guarded_note)
    measurements = engine.router.measurements
    engine.sessions.measurements = measurements
    PrometheusExporter(measurements)
    waited = REGISTRY.get_sample_value("jupyter_agent_approval_wait_seconds_count", {"decision": "once"}) or 0
    llm.script(
        Reply(tool_calls=[ToolCallSpec("guarded_note", {"text": "hi"}, id="call_a")]), Reply(text="ok")
    )
    session, watch = engine.open()
    turn = session.submit("note hi")
    await watch.until(lambda e: e["type"] == "approval_request")
    assert ("approvals_pending", {}, 1.0) in measurements.live()
    session.approve("call_a", "once")
    await watch.end_of(turn)
    assert ("approvals_pending", {}, 0.0) in measurements.live()
    after = REGISTRY.get_sample_value("jupyter_agent_approval_wait_seconds_count", {"decision": "once"})
    assert after == waited + 1


async def test_one_record_per_call_feeds_the_router_and_prometheus(tmp_path):
    """The router's statistics and circuit state, and the Prometheus counters, move together."""

    @tool("flaky", "Fails.", object_schema())
    async def flaky(ctx: ToolContext) -> str:
        raise ConnectionError("down")

    from jupyter_agent.engine.router import ToolRouter

    measurements = Measurements()
    PrometheusExporter(measurements)
    router = ToolRouter([flaky], measurements=measurements, breaker_threshold=2)
    failed = REGISTRY.get_sample_value(
        "jupyter_agent_tool_calls_total", {"tool": "flaky", "outcome": "failed"}
    )
    for n in range(2):
        await router.call(ToolCall(f"c{n}", "flaky", "{}"), ToolContext("s", tmp_path))
    refused = await router.call(ToolCall("c3", "flaky", "{}"), ToolContext("s", tmp_path))
    assert refused.data["code"] == "circuit_open"
    counted = REGISTRY.get_sample_value(
        "jupyter_agent_tool_calls_total", {"tool": "flaky", "outcome": "failed"}
    )
    assert counted == (failed or 0) + 2
    assert router.stats["flaky"].calls == 2 and router.breakers["flaky"].state == "open"
    assert ("tool_circuit_open", {"tool": "flaky"}, 1.0) in measurements.live()
