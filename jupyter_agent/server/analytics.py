"""Usage analytics (``GET /api/agent/analytics``): tokens and cost per person and day, the tools' use, errors and
latency, approvals and refusals, turns per session, turn latency.

Computed from what the store already keeps: the session logs (prompts with their sender, each model call's
``usage``, turn ends) and the audit log (each tool call's outcome, duration and approval). Nothing is counted
twice or kept a second time. A turn belongs to the person whose prompt started it; its duration runs from the
prompt to its last event (queueing included: what the person waited).
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jupyter_agent.engine.health import percentile
from jupyter_agent.errors import BadRequest

DAY = 86_400.0
DEFAULT_DAYS = 30
#: Cumulative buckets of turn durations (ms), as Prometheus' ``le``; the last one is "+Inf".
TURN_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000)
#: Tool outcomes that are refusals: by the server's Authorizer or by policy (never run, nobody to ask).
REFUSALS = frozenset({"not_permitted", "forbidden", "policy_denied", "nobody_to_ask"})
#: Tool outcomes where the tool did not run: no duration of the tool's own.
NOT_RUN = REFUSALS | {"denied", "not_run", "cancelled", "circuit_open"}


def parse_time(raw: str | None, end: bool, name: str) -> float | None:
    """``since``/``until`` as epoch seconds: a UTC date (YYYY-MM-DD, whole day: its start, or for ``end`` the
    start of the next day) or epoch seconds. None when not given."""
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD, UTC) or epoch seconds; got {raw!r}") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (start + timedelta(days=1) if end else start).timestamp()


def window(since: str | None, until: str | None, now: float | None = None) -> tuple[float, float]:
    """The period asked for: by default the last 30 days up to now."""
    end = parse_time(until, True, "until")
    end = (now or time.time()) if end is None else end
    start = parse_time(since, False, "since")
    start = end - DEFAULT_DAYS * DAY if start is None else start
    if start > end:
        raise BadRequest("since must not be after until")
    return start, end


def usage_analytics(store: Any, since: float, until: float, user: str | None, scope: str) -> dict[str, Any]:
    """The analytics of ``user`` (None: everyone) from ``since`` to ``until``; see docs/protocol.md."""
    turns = _turns(store.usage_events(since, until), user)
    calls = [c for c in store.tool_audit(since, until) if user is None or c["user"] == user]
    ended = [t for t in turns.values() if t["prompted"] is not None]
    durations = sorted((t["ended"] - t["prompted"]) * 1000 for t in ended if t["ended"] is not None)
    ttfts = sorted(ms for t in turns.values() for ms in t["ttft_ms"])
    per_session: dict[str, int] = defaultdict(int)
    for t in ended:
        per_session[t["session"]] += 1
    counts = sorted(per_session.values())
    cost_known = all(t["cost_known"] for t in turns.values())
    return {
        "since": since,
        "until": until,
        "user": user,
        "scope": scope,
        "totals": {
            "sessions": len(per_session),
            "turns": len(ended),
            "turns_failed": sum(1 for t in ended if t["failed"]),
            "prompt_tokens": sum(t["prompt_tokens"] for t in turns.values()),
            "completion_tokens": sum(t["completion_tokens"] for t in turns.values()),
            "cost": round(sum(t["cost"] for t in turns.values()), 8),
            "cost_known": cost_known,
            "tool_calls": len(calls),
            "tool_errors": sum(1 for c in calls if c["outcome"] != "ok"),
        },
        "by_day": _by_day(turns),
        "tools": _tools(calls),
        "approvals": _approvals(calls),
        "refusals": {
            "count": (refused := sum(1 for c in calls if c["outcome"] in REFUSALS)),
            "rate": _rate(refused, len(calls)),
        },
        "turns_per_session": {
            "mean": round(sum(counts) / len(counts), 3) if counts else None,
            "p50": percentile([float(n) for n in counts], 50),
            "max": counts[-1] if counts else None,
        },
        "latency": {
            "turn_ms": {"p50": percentile(durations, 50), "p95": percentile(durations, 95)},
            "ttft_ms": {"p50": percentile(ttfts, 50), "p95": percentile(ttfts, 95)},
            "histogram": _histogram(durations),
        },
    }


def _turns(events: list[dict[str, Any]], user: str | None) -> dict[tuple[str, str], dict[str, Any]]:
    """Each turn seen in the events, with its person, prompt and end times, usage and whether it failed."""
    turns: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        if not isinstance(e["turn"], str):
            continue
        key = (e["session"], e["turn"])
        turn = turns.get(key)
        if turn is None:
            turn = turns[key] = {
                "session": e["session"],
                "user": e["owner"],  # until the prompt says who asked (it may precede the period)
                "prompted": None,
                "ended": None,
                "failed": False,
                "days": defaultdict(lambda: [0, 0, 0.0]),  # day -> prompt tokens, completion tokens, cost
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": 0.0,
                "cost_known": True,
                "ttft_ms": [],
            }
        if e["type"] == "message" and e["role"] == "user" and e["task"] is None:
            turn["user"], turn["prompted"] = e["user"], e["ts"]
        elif e["type"] == "usage":
            day = turn["days"][_day(e["ts"])]
            prompt, completion = int(e["prompt_tokens"] or 0), int(e["completion_tokens"] or 0)
            day[0] += prompt
            day[1] += completion
            day[2] += e["cost"] or 0.0
            turn["prompt_tokens"] += prompt
            turn["completion_tokens"] += completion
            turn["cost"] += e["cost"] or 0.0
            turn["cost_known"] = turn["cost_known"] and e["cost"] is not None
            if e["ttft_ms"] is not None:
                turn["ttft_ms"].append(float(e["ttft_ms"]))
        elif e["type"] in ("done", "error") and e["task"] is None and turn["ended"] is None:
            turn["ended"], turn["failed"] = e["ts"], e["type"] == "error"
    return {k: t for k, t in turns.items() if user is None or t["user"] == user}


def _by_day(turns: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}

    def row(day: str, user: str | None) -> dict[str, Any]:
        found = rows.get((day, user))
        if found is None:
            found = rows[(day, user)] = {
                "day": day,
                "user": user,
                "turns": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": 0.0,
            }
        return found

    for t in turns.values():
        if t["prompted"] is not None:
            row(_day(t["prompted"]), t["user"])["turns"] += 1
        for day, (prompt, completion, cost) in t["days"].items():
            target = row(day, t["user"])
            target["prompt_tokens"] += prompt
            target["completion_tokens"] += completion
            target["cost"] = round(target["cost"] + cost, 8)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1] or ""))]


def _tools(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_tool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by_tool[c["tool"]].append(c)
    result = []
    for tool, made in by_tool.items():
        errors = sum(1 for c in made if c["outcome"] != "ok")
        ran = sorted(
            float(c["duration_ms"])
            for c in made
            if c["duration_ms"] is not None and c["outcome"] not in NOT_RUN and not c["asked"]
        )
        result.append(
            {
                "tool": tool,
                "calls": len(made),
                "errors": errors,
                "error_rate": _rate(errors, len(made)),
                "p50_ms": percentile(ran, 50),
                "p95_ms": percentile(ran, 95),
                "p99_ms": percentile(ran, 99),
            }
        )
    return sorted(result, key=lambda t: (-t["calls"], t["tool"]))


def _approvals(calls: list[dict[str, Any]]) -> dict[str, Any]:
    asked = [c for c in calls if c["asked"]]
    approved = sum(1 for c in asked if c["decision"] in ("once", "always"))
    return {
        "requested": len(asked),
        "approved": approved,
        "denied": sum(1 for c in asked if c["decision"] == "deny"),
        "timeout": sum(1 for c in asked if c["decision"] == "timeout"),
        "approval_rate": _rate(approved, len(asked)),
    }


def _histogram(durations_ms: list[float]) -> list[dict[str, Any]]:
    buckets: list[dict[str, Any]] = [
        {"le_ms": le, "count": sum(1 for d in durations_ms if d <= le)} for le in TURN_BUCKETS_MS
    ]
    return [*buckets, {"le_ms": "+Inf", "count": len(durations_ms)}]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
