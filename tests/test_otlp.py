"""Traces leave for a real OTLP/HTTP collector when ``c.JupyterAgent.otel_endpoint`` names one.

The collector here is a small HTTP server on 127.0.0.1 that decodes what it receives with OpenTelemetry's own
protobuf messages, as a collector would.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import wait_for


class Collector:
    """Receives OTLP/HTTP trace exports (protobuf) and keeps the spans' names and attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.services: set[str] = set()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    for attribute in resource_spans.resource.attributes:
                        if attribute.key == "service.name":
                            received.services.add(attribute.value.string_value)
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            attributes = {a.key: a.value for a in span.attributes}
                            received.spans.append({"name": span.name, "attributes": attributes})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


@pytest.fixture(scope="module")
def collector():
    found = Collector()
    yield found
    found.server.shutdown()


@pytest.fixture
def agent_config(agent_config: dict[str, Any], collector: Collector) -> dict[str, Any]:
    return {**agent_config, "otel_endpoint": collector.url, "otel_service_name": "agent-under-test"}


async def test_a_turns_spans_reach_the_configured_collector(agent, llm, collector) -> None:
    llm.script(Reply(tool_calls=[ToolCallSpec("file_list", {"path": "."})]), Reply(text="listed"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("list the files")
    assert frames[-1]["type"] == "done"
    turn = frames[-1]["turn"]

    def exported() -> bool:
        return any(
            s["name"] == "agent.turn" and s["attributes"]["agent.turn"].string_value == turn
            for s in collector.spans
        )

    await wait_for(exported, timeout=30, what="the turn's span at the collector")
    names = [s["name"] for s in collector.spans]
    assert "agent.model_call" in names and "agent.tool_call" in names
    assert collector.services == {"agent-under-test"}
