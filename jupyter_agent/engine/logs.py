"""Which session, turn and tool call a log record belongs to, and structured JSON logs that say so.

The ids live in context variables set by :mod:`jupyter_agent.engine.metrics` where a turn starts and a tool call
runs, so every record logged meanwhile (by the engine, a tool or a library) can carry them. With
``c.JupyterAgent.log_format = "json"`` the agent's loggers write one JSON object per line with these ids.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("agent_session", default=None)
turn_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("agent_turn", default=None)
call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("agent_call", default=None)

#: LogRecord attributes that are not "extra" fields someone passed to the log call.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the session/turn/call ids, any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "session": session_id.get(),
            "turn": turn_id.get(),
            "call": call_id.get(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def use_json_logs(logger_name: str = "jupyter_agent", stream: Any = None) -> logging.Handler:
    """Make ``logger_name`` (and its children) write JSON lines to ``stream`` (stderr) instead of propagating.

    Idempotent: a second call replaces the handler the first one added. Secrets are hidden before a record
    is formatted (``security.redaction.redact_logs`` works where records are made).
    """
    logger = logging.getLogger(logger_name)
    for handler in list(logger.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler
