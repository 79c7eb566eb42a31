"""Prometheus metrics of the agent, served by jupyter_server on its own ``/metrics`` (with its auth rules).

jupyter_server serves prometheus_client's default registry; the agent's metrics join it, named
``jupyter_agent_*``, tools and models as labels. Counters and histograms are fed by
:class:`~jupyter_agent.engine.metrics.Measurements` as it records each turn and call; gauges are read from it
(and from the probes it was given) at each scrape. Only the server imports this module: kernels and the CLI
record into ``Measurements`` without prometheus_client.

The metrics exist once per process (the registry is global); every ``Measurements`` exporting here adds to
them, and the gauges sum over all of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from jupyter_agent.engine.metrics import Measurements
    from jupyter_agent.engine.types import Usage

PREFIX = "jupyter_agent_"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LONG_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800)

TURNS = Counter(
    PREFIX + "turns",
    "Turns that ended, by outcome (completed, max_steps, max_tokens, cancelled, error)",
    ["outcome"],
)
TURN_SECONDS = Histogram(
    PREFIX + "turn_duration_seconds",
    "Time a turn ran, from its start to its last event",
    ["outcome"],
    buckets=LONG_SECONDS,
)
MODEL_CALLS = Counter(
    PREFIX + "model_calls", "Model calls, by model and outcome (ok, error, cancelled)", ["model", "outcome"]
)
TOKENS = Counter(PREFIX + "tokens", "Model tokens, by model and kind (prompt, completion)", ["model", "kind"])
COST = Counter(
    PREFIX + "cost_usd", "Cost of model calls in US dollars, where litellm knows the price", ["model"]
)
TTFT = Histogram(
    PREFIX + "time_to_first_token_seconds",
    "Time from a model request to its first token or tool call",
    ["model"],
    buckets=SECONDS,
)
TOOL_CALLS = Counter(
    PREFIX + "tool_calls",
    "Tool calls the model made, by tool and outcome (ok, error, failed, timeout, invalid, not_permitted, "
    "policy_denied, denied, nobody_to_ask, circuit_open, cancelled)",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    PREFIX + "tool_duration_seconds",
    "Time a tool ran (approval waits excluded), by tool and outcome",
    ["tool", "outcome"],
    buckets=SECONDS,
)
APPROVAL_SECONDS = Histogram(
    PREFIX + "approval_wait_seconds",
    "Time a call waited for a person's decision, by decision (once, always, deny, timeout, cancelled)",
    ["decision"],
    buckets=LONG_SECONDS,
)

#: The gauges read at each scrape: name (without the prefix) -> (help, label names).
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "approvals_pending": ("Tool calls waiting for a person's approval", ()),
    "sessions_active": ("Sessions with a turn running", ()),
    "websockets_open": ("Open chat WebSockets", ()),
    "tool_circuit_open": (
        "1 while a tool's circuit breaker is open or half-open after repeated failures",
        ("tool",),
    ),
    "browser_contexts": (
        "Browser contexts, by state (session: in use by a session, pooled: warm and ready)",
        ("state",),
    ),
    "browser_memory_bytes": ("Resident memory of the browser's processes at its last check", ()),
    "embedded_model_state": (
        "1 for the embedded model's current state (stopped, starting, ready, failed, not_installed)",
        ("model", "state"),
    ),
    "plan_tasks": ("Tasks of the plans being run, by state", ("state",)),
}

_exporting: weakref.WeakSet[Measurements] = weakref.WeakSet()


class PrometheusExporter:
    """Feeds the counters and histograms from one ``Measurements``; its gauges are read at each scrape."""

    def __init__(self, measurements: Measurements) -> None:
        _exporting.add(measurements)
        measurements.export(self)

    def turn(self, outcome: str, seconds: float) -> None:
        TURNS.labels(outcome).inc()
        TURN_SECONDS.labels(outcome).observe(seconds)

    def model_call(self, model: str, outcome: str, usage: Usage | None) -> None:
        MODEL_CALLS.labels(model, outcome).inc()
        if usage is None:
            return
        TOKENS.labels(model, "prompt").inc(usage.prompt_tokens)
        TOKENS.labels(model, "completion").inc(usage.completion_tokens)
        if usage.cost is not None:
            COST.labels(model).inc(usage.cost)
        if usage.ttft_ms is not None:
            TTFT.labels(model).observe(usage.ttft_ms / 1000)

    def tool_call(self, tool: str, outcome: str) -> None:
        TOOL_CALLS.labels(tool, outcome).inc()

    def tool_ran(self, tool: str, outcome: str, seconds: float) -> None:
        TOOL_SECONDS.labels(tool, outcome).observe(seconds)

    def approval(self, decision: str, seconds: float) -> None:
        APPROVAL_SECONDS.labels(decision).observe(seconds)


class _LiveGauges(Collector):
    """The gauges, summed over every ``Measurements`` exporting here, read when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in GAUGES}
        for measurements in list(_exporting):
            for name, labels, value in measurements.live():
                if name in GAUGES:
                    key = tuple(labels.get(label, "") for label in GAUGES[name][1])
                    totals[name][key] = totals[name].get(key, 0.0) + value
        for name, (help_text, label_names) in GAUGES.items():
            family = GaugeMetricFamily(PREFIX + name, help_text, labels=list(label_names))
            for key, value in sorted(totals[name].items()):
                family.add_metric(list(key), value)
            yield family

    def describe(self) -> list[Metric]:
        return []  # collected fresh at each scrape; nothing to check against other collectors' names


REGISTRY.register(_LiveGauges())
