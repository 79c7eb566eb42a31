"""Per-tool health: rolling latency and error statistics, and a circuit breaker (the circuitbreaker library).

A tool that fails repeatedly for reasons outside the model's control (it raised, timed out, its service is
down) opens its circuit for a cool-down: calls go to its declared fallbacks, or get a clear error at once
instead of waiting for yet another timeout. The model is told which tools are degraded. Both are kept by
:class:`~jupyter_agent.engine.metrics.Measurements`, which records every call once for them and for Prometheus.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import circuitbreaker

WINDOW = 200  # calls kept for rolling statistics


def percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[k], 2)


@dataclass
class ToolStats:
    """Counts since start (with the calls refilled from the audit log), plus the latencies and outcomes of the
    last ``WINDOW`` calls."""

    calls: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def record(self, ok: bool, elapsed_ms: float | None) -> None:
        """One call's outcome and duration (None: not known, e.g. a call that waited for a person)."""
        self.calls += 1
        self.errors += 0 if ok else 1
        if elapsed_ms is not None:
            self.latencies_ms.append(elapsed_ms)
        self.outcomes.append(ok)

    @property
    def error_rate(self) -> float:
        return 0.0 if not self.outcomes else round(1 - sum(self.outcomes) / len(self.outcomes), 3)

    def mean_ms(self) -> float | None:
        return round(sum(self.latencies_ms) / len(self.latencies_ms), 2) if self.latencies_ms else None

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": percentile(ordered, 50),
            "p95_ms": percentile(ordered, 95),
        }


class _Failed(Exception):
    """An infrastructure failure, raised into the breaker for it to count."""


class ToolBreaker(circuitbreaker.CircuitBreaker):
    """circuitbreaker's breaker for one tool: opens after ``failure_threshold`` consecutive infrastructure
    failures; after ``recovery_timeout`` s it is ``half_open`` and one trial call decides.

    A tool's failure comes back as an error result, not an exception, so the router reports each outcome
    with :meth:`record` (outside any await: a cancelled call is neither a success nor a failure).
    """

    def record(self, failed: bool) -> None:
        with contextlib.suppress(_Failed), self:
            if failed:
                raise _Failed
