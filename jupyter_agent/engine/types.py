"""Plain data types shared by the engine, the tools and the front ends.

Events travel as JSON objects ``{"type", "session", "seq", "ts", ...}``; the TypeScript types in
``labextension/src/protocol.ts`` mirror this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1

#: Event types the server sends; see DESIGN.md "Wire protocol".
EVENT_TYPES = frozenset(
    {
        "message",  # a user or assistant message (role, content, tool_calls)
        "token",  # a streamed piece of the assistant's answer
        "thinking",  # a streamed piece of the model's reasoning
        "tool_call",  # the model asked for a tool (id, name, arguments)
        "tool_status",  # a tool call changed state (running, waiting_approval, ...)
        "tool_result",  # a tool finished (id, name, ok, content, data, duration_ms)
        "approval_request",  # a tool call waits for a person's decision
        "approval_result",  # that decision (or its timeout)
        "plan",
        "task_update",
        "usage",  # tokens, cost, latency of one model call
        "activity",  # what the turn does now, in words (phase, text, step, started, prompt progress)
        "error",  # the turn ended with an error
        "done",  # the turn ended
        "session",  # session metadata changed (title)
        "redaction",  # what was hidden during a turn, by kind (just before its done or error)
        "change",  # a tool call changed a notebook cell or a file (a summary; GET .../changes has diffs)
        "turn_review",
        "compaction",  # the conversation before a turn was summarised to fit the model's window (summary)  # a turn's changes were undone, redone, accepted or rejected (by whom, conflicts)
    }
)

#: Event types that end a turn: every prompt ends in exactly one of them.
TERMINAL_EVENTS = frozenset({"done", "error"})


@dataclass
class ToolCall:
    """One tool call as the model asked for it."""

    id: str
    name: str
    arguments: str = ""  # raw JSON text from the model

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError with a readable reason when they are not."""
        if not self.arguments.strip():
            return {}
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError as err:
            raise ValueError(f"arguments are not valid JSON ({err.msg} at position {err.pos})") from None
        if not isinstance(value, dict):
            raise ValueError("arguments must be a JSON object")
        return value

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Usage:
    """Measured cost of one model call."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # USD, when litellm knows the model's price
    latency_ms: float = 0.0  # request sent -> stream finished
    ttft_ms: float | None = None  # request sent -> first content or tool-call chunk

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
            "latency_ms": round(self.latency_ms, 2),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
        }


@dataclass
class Completion:
    """What one streamed model call produced once it finished."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
