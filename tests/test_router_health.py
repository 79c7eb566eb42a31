"""The smart router: fallbacks, circuit breaker, persisted statistics, degraded tools told to the model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from jupyter_agent.engine.metrics import Measurements
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.types import ToolCall
from jupyter_agent.store import Store
from jupyter_agent.tools.base import ToolContext, object_schema, tool

URL = object_schema(["url"], url={"type": "string"})


def make_tools(calls: list[str], primary_fails: bool = True):
    @tool("fetch_rich", "primary", URL, fallbacks=("fetch_plain",))
    async def fetch_rich(ctx, url):
        calls.append("rich")
        if primary_fails:
            raise ConnectionError("browser is down")
        return f"rich {url}"

    @tool("fetch_plain", "fallback", URL)
    async def fetch_plain(ctx, url):
        calls.append("plain")
        return f"plain {url}"

    return [fetch_rich, fetch_plain]


def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(session_id="s", root_dir=tmp_path)


def call(name: str, **args) -> ToolCall:
    import json

    return ToolCall(id="c1", name=name, arguments=json.dumps(args))


def test_failing_tool_falls_back_and_says_so(tmp_path):
    calls: list[str] = []
    router = ToolRouter(make_tools(calls))
    result = asyncio.run(router.call(call("fetch_rich", url="http://x"), ctx(tmp_path)))
    assert result.ok and result.text.endswith("plain http://x")
    assert "fetch_rich failed" in result.text and "used fetch_plain instead" in result.text
    assert result.data["fallback_from"] == "fetch_rich" and calls == ["rich", "plain"]


def test_circuit_opens_after_repeated_failures_then_half_opens(tmp_path):
    calls: list[str] = []
    router = ToolRouter(make_tools(calls), breaker_threshold=2, breaker_cooldown=0.3)
    for _ in range(2):
        asyncio.run(router.call(call("fetch_rich", url="u"), ctx(tmp_path)))
    assert router.breakers["fetch_rich"].state == "open"
    calls.clear()
    result = asyncio.run(router.call(call("fetch_rich", url="u"), ctx(tmp_path)))
    assert calls == ["plain"] and result.ok  # the broken tool is not even tried while open
    assert "fetch_rich failed (fetch_rich is disabled for 1 s after repeated failures)" in result.text
    assert any("fetch_rich" in note for note in router.degraded())
    described = {t["name"]: t for t in router.describe()}
    assert described["fetch_rich"]["stats"]["circuit"] == "open"
    wait_for(lambda: router.breakers["fetch_rich"].state == "half_open")  # the cool-down is over
    calls.clear()
    asyncio.run(router.call(call("fetch_rich", url="u"), ctx(tmp_path)))
    assert calls == ["rich", "plain"]  # one trial call, which failed: open again
    assert router.breakers["fetch_rich"].state == "open"


def test_a_trial_call_that_works_closes_the_circuit(tmp_path):
    calls: list[str] = []
    tools = make_tools(calls)
    router = ToolRouter(tools, breaker_threshold=1, breaker_cooldown=0.3)
    asyncio.run(router.call(call("fetch_rich", url="u"), ctx(tmp_path)))
    assert router.breakers["fetch_rich"].state == "open"
    wait_for(lambda: router.breakers["fetch_rich"].state == "half_open")
    router.register(make_tools(calls, primary_fails=False)[0])  # the service is back (same breaker)
    calls.clear()
    result = asyncio.run(router.call(call("fetch_rich", url="u"), ctx(tmp_path)))
    assert result.ok and calls == ["rich"]
    assert router.breakers["fetch_rich"].state == "closed" and router.degraded() == []


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_model_mistakes_do_not_open_the_circuit(tmp_path):
    calls: list[str] = []
    router = ToolRouter(make_tools(calls, primary_fails=False), breaker_threshold=1)
    for _ in range(3):
        result = asyncio.run(router.call(ToolCall("c", "fetch_rich", '{"url": 5}'), ctx(tmp_path)))
        assert not result.ok and "invalid arguments" in result.text
    assert router.breakers["fetch_rich"].state == "closed"


def test_statistics_survive_a_restart_from_the_audit_log(tmp_path):
    """The audit log is the durable record of every call: a new process's router refills its statistics from
    it (calls that waited for a person keep their outcome, not their duration; refused ones measure nothing)."""
    db = tmp_path / "agent.db"
    store = Store(db)
    for n, (outcome, approval) in enumerate([("ok", None), ("ok", None), ("ok", {"decision": "once"})]):
        detail = {"call_id": f"c{n}", "name": "fetch_rich", "ok": True, "duration_ms": 12.5 + n}
        store.audit("s", "alice", "tool:fetch_rich", {**detail, "approval": approval, "outcome": outcome})
    store.audit(
        "s", "alice", "tool:fetch_rich", {"call_id": "c9", "outcome": "not_permitted", "approval": None}
    )
    store.close()
    again = ToolRouter(make_tools([], primary_fails=False), measurements=Measurements(history=Store(db)))
    stats = {t["name"]: t["stats"] for t in again.describe()}
    assert stats["fetch_rich"]["calls"] == 3 and stats["fetch_rich"]["errors"] == 0
    assert stats["fetch_rich"]["p50_ms"] == 12.5 and stats["fetch_rich"]["p95_ms"] == 13.5
    assert stats["fetch_plain"]["calls"] == 0


PLUGIN = """
from jupyter_agent.tools.base import ToolResult, object_schema, tool


@tool("acme_shout", "Say it louder", object_schema(["text"], text={"type": "string"}))
async def shout(ctx, text):
    return ToolResult(text.upper() + "!")


def tools():
    return [shout]
"""


def test_tools_of_an_installed_package_are_found_through_its_entry_points(tmp_path, monkeypatch, caplog):
    """A real distribution on sys.path (as pip installs one): its good entry point registers, its broken one
    is reported and skipped."""
    (tmp_path / "acme_agent_tools.py").write_text(PLUGIN)
    dist = tmp_path / "acme_agent_tools-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-agent-tools\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[jupyter_agent.tools]\nacme = acme_agent_tools:tools\nbroken = acme_agent_tools:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    router = ToolRouter([])
    assert router.load_entry_points() == ["broken"]
    assert "Skipping tool entry point 'broken'" in caplog.text
    assert router.names == ["acme_shout"]
    result = asyncio.run(router.call(call("acme_shout", text="hi"), ctx(tmp_path)))
    assert result.ok and result.text == "HI!"
