"""What the handlers talk to: the running agent's services, built by the ExtensionApp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.engine.llm import LLMClient, preload_litellm
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import SessionManager
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
        }

    def audit(
        self, session: str | None, user: dict[str, Any] | None, action: str, detail: dict[str, Any]
    ) -> None:
        self.store.audit(session, (user or {}).get("username"), action, redact(detail))
