"""What a browser operation raises for the model to read, and how a Playwright error is trimmed for it."""

from __future__ import annotations

from jupyter_agent.errors import ToolError


class BrowserError(ToolError):
    """A browser operation failed in a way the model can read and react to."""

    code = "browser_error"


class UrlRefused(BrowserError):
    """The URL or network policy refused a URL; the message names the rule."""

    code = "url_refused"


def first_line(err: BaseException) -> str:
    """Playwright's message without its call log."""
    return (getattr(err, "message", None) or str(err)).split("\n", 1)[0].strip()
