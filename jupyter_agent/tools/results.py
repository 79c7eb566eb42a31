"""``read_result``: the rest of a tool result that was cut short to fit the model's context window.

Every tool result is logged whole (up to the engine's limit) in the session's event log; what the model reads
of it is capped (see :mod:`jupyter_agent.engine.context`), with a note naming this tool, the call and where
the cut part starts. A cell's long output, a big file read, a page's text: all are paged the same way.
"""

from __future__ import annotations

from typing import Any

from jupyter_agent.errors import NotFound
from jupyter_agent.tools.base import ToolContext, ToolResult, object_schema, tool

PAGE = 6_000  # characters per read


class ResultLog:
    """Tool results as the session's event log holds them."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def text(self, session_id: str, call_id: str) -> str:
        found = None
        for event in self.store.iter_events(session_id, ("tool_result",)):
            if event.get("call_id") == call_id:
                found = event  # the latest, if a call id was ever reused
        if found is None:
            raise NotFound(f"no tool result with call_id {call_id!r} in this session")
        return str(found.get("content") or "")


@tool(
    "read_result",
    "Read more of an earlier tool result that was cut short: give the call_id and offset its note names.",
    object_schema(
        ["call_id"],
        call_id={"type": "string", "description": "The call_id the cut note names"},
        offset={"type": ["integer", "null"], "minimum": 0, "description": "Character to start from"},
    ),
    timeout=30,
)
async def read_result(ctx: ToolContext, call_id: str, offset: int | None = None) -> ToolResult:
    text = ctx.service("results").text(ctx.session_id, call_id)
    start = min(max(offset or 0, 0), len(text))
    part = text[start : start + PAGE]
    end = start + len(part)
    note = f"[characters {start:,} to {end:,} of {len(text):,}" + (
        f"; call read_result with offset={end} for more]" if end < len(text) else "; the end]"
    )
    return ToolResult(
        f"{part}\n{note}", data={"call_id": call_id, "start": start, "end": end, "total": len(text)}
    )


RESULT_TOOLS = [read_result]
__all__ = ["RESULT_TOOLS", "ResultLog"]
