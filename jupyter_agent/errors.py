"""Domain errors. Each carries a stable ``code`` that the server maps to an HTTP status or an error event."""

from __future__ import annotations


class AgentError(Exception):
    """Base class: an error with a code and a message a person can act on."""

    code = "agent_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(AgentError):
    code = "bad_request"
    status = 400


class NotFound(AgentError):
    code = "not_found"
    status = 404


class Conflict(AgentError):
    code = "conflict"
    status = 409


class Forbidden(AgentError):
    """The person may not do this (the server's Authorizer, or the session's owner, says no)."""

    code = "forbidden"
    status = 403


class PathOutsideRoot(BadRequest):
    """A path from a model or a request resolves outside the server's root directory."""

    code = "path_outside_root"


class ToolError(AgentError):
    """A tool failed in a way the model can read and react to."""

    code = "tool_error"


class ProviderError(AgentError):
    """The LLM provider failed after retries and fallbacks."""

    code = "provider_error"
    status = 502


class BudgetExceeded(AgentError):
    code = "budget_exceeded"


class ApprovalTimeout(AgentError):
    code = "approval_timeout"
