"""Keep secrets out of logs, events and the audit log."""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|authorization|credential)", re.I)
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{16}|xox[baprs]-[A-Za-z0-9-]{8,}|"
    r"gh[pousr]_[A-Za-z0-9]{20,})"
)
MASK = "***"


def redact_text(text: str) -> str:
    """Mask things that look like API keys or bearer tokens inside free text."""
    return SECRET_VALUE.sub(MASK, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys masked and secret-looking strings scrubbed."""
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and SECRET_KEY.search(k) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
