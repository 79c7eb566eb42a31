"""OpenTelemetry traces of the agent's turns (optional): one span per turn, a child span per model call and
per tool call.

Tracing is on when ``opentelemetry-sdk`` is installed and ``c.JupyterAgent.otel_endpoint`` names an OTLP/HTTP
collector, or when a test hands in its own exporter. Each tracer has its own ``TracerProvider`` (the global
one is left to the host). Nothing here imports OpenTelemetry before tracing is turned on, so a kernel or the
CLI without it pays nothing.

A turn runs in its own task, long after the request that asked for it has been answered, so its span starts a
trace of its own and *links* to the request's span: the W3C ``traceparent`` the client sent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

INSTALL = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"


class Tracing:
    """Spans of turns, model calls and tool calls, sent to one exporter."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("jupyter_agent")

    @classmethod
    def to_exporter(
        cls, exporter: SpanExporter, batch: bool = True, service: str = "jupyter-agent"
    ) -> Tracing:
        """Tracing into ``exporter``; ``batch=False`` exports each span as it ends (tests)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        return cls(provider)

    @classmethod
    def to_endpoint(cls, endpoint: str, service: str = "jupyter-agent") -> Tracing | None:
        """Tracing to an OTLP/HTTP collector (e.g. ``http://collector:4318/v1/traces``); None, with a warning
        saying what to install, when OpenTelemetry's SDK or its OTLP exporter is missing."""
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "otel_endpoint is set but OpenTelemetry is not installed, so no traces are sent: %s", INSTALL
            )
            return None
        return cls.to_exporter(OTLPSpanExporter(endpoint=endpoint), service=service)

    def start_turn(self, attributes: dict[str, Any], origin: dict[str, str] | None) -> Span:
        """A turn's span: the root of its own trace, linked to the request that asked for it (if traced)."""
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        links = []
        if origin:
            remote = trace.get_current_span(
                TraceContextTextMapPropagator().extract(origin)
            ).get_span_context()
            if remote.is_valid:
                links.append(trace.Link(remote, {"agent.link": "request"}))
        return self.tracer.start_span("agent.turn", context.Context(), attributes=attributes, links=links)

    def start_child(self, name: str, attributes: dict[str, Any]) -> Span:
        """A span under the current one (the turn's: model and tool calls run in the turn's task context)."""
        return self.tracer.start_span(name, attributes=attributes)

    @staticmethod
    def activate(span: Span) -> object:
        """Make ``span`` the current one in this context; returns the token :meth:`deactivate` takes."""
        from opentelemetry import context, trace

        return context.attach(trace.set_span_in_context(span))

    @staticmethod
    def deactivate(token: object) -> None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]

    @staticmethod
    def finish(span: Span, attributes: dict[str, Any], error: str | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def shutdown(self) -> None:
        """Send the spans still waiting in the batch, then stop."""
        self.provider.shutdown()


def origin_of(*sources: Any) -> dict[str, str] | None:
    """The W3C trace context (``traceparent``, ``tracestate``) of a request: from the first of ``sources``
    (a prompt frame, the request's headers: anything with ``get``) that carries a ``traceparent``."""
    for source in sources:
        parent = source.get("traceparent") if source is not None else None
        if isinstance(parent, str) and parent:
            state = source.get("tracestate")
            return {"traceparent": parent, **({"tracestate": state} if isinstance(state, str) else {})}
    return None
