"""Usage analytics (GET /api/agent/analytics) against a scripted history on a real server with three people
(tests/identities.py): the owner is an admin and sees everyone; the collaborator sees only themselves."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import AgentClient
from tests.identities import person_client, with_people


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return with_people(jp_server_config)


@pytest.fixture
def people(jp_serverapp, jp_fetch, jp_http_port, jp_base_url) -> dict[str, AgentClient]:
    clients = {
        name: person_client(name, jp_fetch, jp_http_port, jp_base_url) for name in ("owner", "collaborator")
    }
    yield clients
    for client in clients.values():
        client.close()


def tokens(frames: list[dict[str, Any]]) -> tuple[int, int]:
    usage = [f for f in frames if f["type"] == "usage"]
    return sum(u["prompt_tokens"] for u in usage), sum(u["completion_tokens"] for u in usage)


async def scripted_history(people, llm, jp_root_dir) -> dict[str, tuple[int, int]]:
    """Two turns of the owner (a file read; a shell command they deny), one of the collaborator (a shell
    command their rights refuse, a read of a missing file). Returns each person's (prompt, completion) tokens."""
    (jp_root_dir / "notes.txt").write_text("42\n")
    owner, collaborator = people["owner"], people["collaborator"]
    ws = await owner.connect(await owner.new_session())
    llm.script(Reply(tool_calls=[ToolCallSpec("file_read", {"path": "notes.txt"})]), Reply(text="42."))
    first = await ws.turn("read my notes")
    llm.script(Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "ls"}, id="sh1")]), Reply(text="ok"))
    await ws.send(type="prompt", text="list the files")
    asked = await ws.until_type("approval_request")
    await ws.send(type="approve", call_id="sh1", decision="deny")
    second = asked + await ws.until_type("done", "error")
    theirs = await collaborator.connect(await collaborator.new_session())
    llm.script(
        Reply(
            tool_calls=[
                ToolCallSpec("shell_run", {"command": "ls"}),
                ToolCallSpec("file_read", {"path": "missing.txt"}),
            ]
        ),
        Reply(text="I could not."),
    )
    third = await theirs.turn("look around")
    assert [f[-1]["type"] for f in (first, second, third)] == ["done"] * 3
    prompt = tokens(first)[0] + tokens(second)[0], tokens(first)[1] + tokens(second)[1]
    return {"owner": prompt, "collaborator": tokens(third)}


async def test_the_analytics_numbers_match_a_scripted_history(people, llm, jp_root_dir):
    used = await scripted_history(people, llm, jp_root_dir)
    status, everyone = await people["owner"].request("GET", "analytics")
    assert status == 200 and everyone["scope"] == "all" and everyone["user"] is None
    assert everyone["until"] - everyone["since"] == pytest.approx(30 * 86_400)
    totals = everyone["totals"]
    assert totals["sessions"] == 2 and totals["turns"] == 3 and totals["turns_failed"] == 0
    assert totals["prompt_tokens"] == used["owner"][0] + used["collaborator"][0]
    assert totals["completion_tokens"] == used["owner"][1] + used["collaborator"][1]
    assert totals["tool_calls"] == 4 and totals["tool_errors"] == 3
    assert totals["cost"] == 0 and totals["cost_known"] is False  # the scripted model has no price
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert [(d["day"], d["user"], d["turns"], d["prompt_tokens"]) for d in everyone["by_day"]] == [
        (today, "collaborator", 1, used["collaborator"][0]),
        (today, "owner", 2, used["owner"][0]),
    ]
    tools = {t["tool"]: t for t in everyone["tools"]}
    assert [t["tool"] for t in everyone["tools"]] == ["file_read", "shell_run"]
    assert (tools["file_read"]["calls"], tools["file_read"]["errors"], tools["file_read"]["error_rate"]) == (
        2,
        1,
        0.5,
    )
    assert (
        tools["file_read"]["p50_ms"] is not None
        and tools["file_read"]["p99_ms"] >= tools["file_read"]["p50_ms"]
    )
    assert (tools["shell_run"]["calls"], tools["shell_run"]["errors"], tools["shell_run"]["p50_ms"]) == (
        2,
        2,
        None,
    )
    assert everyone["approvals"] == {
        "requested": 1,
        "approved": 0,
        "denied": 1,
        "timeout": 0,
        "approval_rate": 0.0,
    }
    assert everyone["refusals"] == {"count": 1, "rate": 0.25}
    assert everyone["turns_per_session"] == {"mean": 1.5, "p50": 1.0, "max": 2}
    latency = everyone["latency"]
    assert 0 < latency["turn_ms"]["p50"] <= latency["turn_ms"]["p95"]
    assert latency["ttft_ms"]["p50"] is not None
    assert latency["histogram"][-1] == {"le_ms": "+Inf", "count": 3}
    counts = [b["count"] for b in latency["histogram"]]
    assert counts == sorted(counts)  # cumulative


async def test_people_see_only_their_own_usage_unless_admins(people, llm, jp_root_dir):
    used = await scripted_history(people, llm, jp_root_dir)
    status, mine = await people["collaborator"].request("GET", "analytics")
    assert status == 200 and mine["scope"] == "self" and mine["user"] == "collaborator"
    assert mine["totals"]["turns"] == 1 and mine["totals"]["prompt_tokens"] == used["collaborator"][0]
    assert mine["refusals"] == {"count": 1, "rate": 0.5} and mine["approvals"]["requested"] == 0
    status, refused = await people["collaborator"].request("GET", "analytics", params={"user": "owner"})
    assert status == 403 and refused["code"] == "forbidden"
    status, theirs = await people["owner"].request("GET", "analytics", params={"user": "collaborator"})
    assert status == 200 and theirs["totals"] == mine["totals"] and theirs["scope"] == "self"


async def test_the_period_takes_dates_or_epoch_seconds(people, llm, jp_root_dir):
    await scripted_history(people, llm, jp_root_dir)
    owner = people["owner"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    _, day = await owner.request("GET", "analytics", params={"since": today, "until": today})
    assert day["until"] - day["since"] == 86_400 and day["totals"]["turns"] == 3
    _, before = await owner.request(
        "GET", "analytics", params={"since": "0", "until": str(time.time() - 3600)}
    )
    assert before["totals"]["turns"] == 0 and before["tools"] == [] and before["by_day"] == []
    status, bad = await owner.request("GET", "analytics", params={"since": "last week"})
    assert status == 400 and "YYYY-MM-DD" in bad["message"]
    status, _ = await owner.request("GET", "analytics", params={"since": today, "until": "2000-01-01"})
    assert status == 400
