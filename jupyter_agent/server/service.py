"""What the handlers talk to: the running agent's services, built by the ExtensionApp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.engine.llm import LLMClient, preload_litellm
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import SessionManager
from jupyter_agent.security.audit import AuditTrail
from jupyter_agent.security.redaction import redact
from jupyter_agent.store import Store


@dataclass
class AgentService:
    store: Store
    sessions: SessionManager
    router: ToolRouter
    llm: LLMClient
    workspace: Workspace
    version: str
    max_message_bytes: int = 1_048_576
    models: list[str] = field(default_factory=list)
    transcription_model: str = "whisper-1"
    local_model: Any = None  # the embedded model's LocalModelServer when no other model is configured
    trail: AuditTrail | None = None  # writes the audit log (redacted, chained, mirrored)
    browser: Any = None  # the BrowserService, for its health (sandbox, network guard)
    mcp: Any = None  # the MCP servers' connections (MCPConnections), for their health
    # Session titles and owners as sent: redaction without a conversation's vault depends on the text alone.
    _listed: dict[str, str] = field(default_factory=dict, repr=False)

    def health(self) -> dict[str, Any]:
        future = preload_litellm()
        return {
            "status": "ok",
            "version": self.version,
            "model": self.llm.model,
            "models": self.models,
            "transcription_model": self.transcription_model,
            "llm_ready": future.done() and future.exception() is None,
            # None, or {"name", "state": starting|ready|failed|not_installed|stopped, "ready", "error", ...}
            "local_model": None if self.local_model is None else self.local_model.status(),
            # {"running", "sandbox": true/false (null: a remote browser), "sandbox_reason", "address_pinning"}
            "browser": None if self.browser is None else self.browser.health(),
            # per configured MCP server: {"transport", "state": starting|ready|failed|stopped, "error", "tools", ...}
            "mcp_servers": {} if self.mcp is None else self.mcp.health(),
        }

    def audit(
        self, session: str | None, user: dict[str, Any] | None, action: str, detail: dict[str, Any]
    ) -> None:
        """Record what a person did through the server (an approval, a plan edit, a refused request)."""
        username = (user or {}).get("username")
        if self.trail is None:
            self.store.audit(session, username, action, redact(detail))
            return
        vault = self.trail.redactor.vault(session) if session else None
        self.trail.record(session, username, action, detail, vault)

    def outgoing(self, value: Any) -> Any:
        """``value`` with the secrets in it replaced by placeholders, as a REST answer may carry it."""
        return value if self.trail is None else self.trail.redactor.redact(value)

    def outgoing_sessions(self, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The session list as a REST answer carries it: only the title (typed by a person, or taken from a
        prompt) and the owner's name can hold text to hide; the rest are the server's own ids, numbers and
        host name. Redacting whole entries, every time, cost ~70 ms per request for 1,000 sessions."""
        return [
            {**s, "title": self._listed_text(s["title"]), "owner": self._listed_text(s["owner"])}
            for s in sessions
        ]

    def _listed_text(self, text: Any) -> Any:
        if not isinstance(text, str):
            return text
        done = self._listed.get(text)
        if done is None:
            if len(self._listed) >= 100_000:  # bounded: titles of sessions long deleted go too
                self._listed.clear()
            done = self._listed[text] = self.outgoing(text)
        return done

    def audit_page(self, before: int | None, limit: int) -> dict[str, Any]:
        """Audit entries newest first, ``limit`` of them before id ``before``; ``next`` continues the paging."""
        entries = self.store.audit_log(limit, before)
        more = len(entries) == limit and entries[-1]["id"] > 1
        return {"entries": entries, "next": entries[-1]["id"] if more else None}
