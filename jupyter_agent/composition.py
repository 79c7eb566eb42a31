"""Compose the agent engine from the ``JupyterAgent`` settings: one recipe for every process that runs it.

The server extension (:mod:`jupyter_agent.app`), the magics and agent kernel, and the CLI
(:mod:`jupyter_agent.runtime`) differ in their tool services (a live shared notebook or the kernel's own
namespace) and their tools; the model client, the embedded model when none is configured, the router and
its persisted statistics, the agent loop with its budgets, the audit log, sessions and the planner are built
here the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_agent.browser import BrowserConfig
    from jupyter_agent.engine.llm import LLMClient
    from jupyter_agent.engine.loop import AgentLoop
    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.engine.session import SessionManager
    from jupyter_agent.local_model.server import LocalModelServer
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import Tool


def data_path(configured: str, name: str) -> Path:
    """Where the agent keeps a file: the configured path, else ``<jupyter data dir>/agent/<name>``."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(configured) if configured else Path(jupyter_data_dir()) / "agent" / name


def models_dir() -> Path:
    """Where the embedded models' joined GGUF files live: ``<jupyter data dir>/agent/models``."""
    return data_path("", "models")


def describe_prompt(text: str, context: dict[str, Any]) -> str:
    """The user's message as the model reads it: the text plus the document it names, if any."""
    notebook = context.get("notebook")
    if isinstance(notebook, str) and notebook:
        return f"[Active notebook: {notebook}]\n{text}"
    return text


@dataclass
class Engine:
    """What :func:`compose_engine` builds; ``local_model`` is the embedded model's server, if it runs one."""

    llm: LLMClient
    router: ToolRouter
    loop: AgentLoop
    sessions: SessionManager
    store: Store
    local_model: LocalModelServer | None

    async def close(self) -> None:
        import asyncio

        await self.sessions.close()
        self.store.close()
        if self.local_model is not None:
            await asyncio.to_thread(self.local_model.stop)


def make_llm(settings: Any) -> LLMClient:
    """The model client, with litellm imported and warmed in a worker thread (nothing waits for it)."""
    from jupyter_agent.engine.llm import LLMClient

    llm = LLMClient(
        model=settings.model,
        options=dict(settings.model_options),
        fallback_models=list(settings.fallback_models),
        retries=settings.retries,
        backoff=settings.retry_backoff,
        request_timeout=settings.request_timeout,
        chunk_timeout=settings.chunk_timeout,
        vision=settings.vision,
    )
    llm.preload()
    return llm


def embedded_model(llm: LLMClient, settings: Any) -> LocalModelServer | None:
    """With no model configured, point ``llm`` at the embedded model and start it in the background.

    Returns its server (whose status says why when it cannot run), or None when a model is configured or
    ``local_model`` is 'none'.
    """
    if settings.model:
        return None
    from jupyter_agent.local_model.server import configure

    return configure(
        llm,
        settings.local_model,
        models_dir(),
        threads=settings.local_model_threads,
    )


def compose_engine(
    settings: Any,
    root: Path,
    services: dict[str, Any],
    tools: Iterable[Tool],
    *,
    policy: dict[str, str] | None = None,
    system_prompt: str | None = None,
    load_entry_points: bool = True,
) -> Engine:
    """The engine for ``settings`` (a ``JupyterAgent``), its tools working in ``root`` through ``services``.

    ``policy`` is merged over ``settings.tool_policy``; ``system_prompt`` replaces the default one.
    """
    from jupyter_agent.engine.loop import SYSTEM_PROMPT, AgentLoop, Budget
    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.engine.scheduler import Scheduler
    from jupyter_agent.engine.session import SessionManager, Turn
    from jupyter_agent.engine.types import ToolCall
    from jupyter_agent.security.redaction import redact
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import ToolContext

    llm = make_llm(settings)
    local_model = embedded_model(llm, settings)
    store = Store(data_path(settings.db_path, "agent.db"))
    router = ToolRouter(list(tools), {**settings.tool_policy, **(policy or {})}, state=store)
    if load_entry_points:
        router.load_entry_points()

    def context_factory(turn: Turn, call: ToolCall) -> ToolContext:
        return ToolContext(
            session_id=turn.session.id,
            root_dir=root,
            user=(turn.user or {}).get("username"),
            call_id=call.id,
            services=services,
            emit=lambda kind, fields: turn.emit(kind, call_id=call.id, **fields),
        )

    def audit(turn: Turn, call: ToolCall, arguments: Any, result: Any, elapsed_ms: float) -> None:
        detail = {"arguments": arguments, "ok": result.ok, "duration_ms": round(elapsed_ms, 1)}
        store.audit(turn.session.id, (turn.user or {}).get("username"), f"tool:{call.name}", redact(detail))

    loop = AgentLoop(
        llm,
        router,
        context_factory,
        Budget(settings.max_steps, settings.turn_timeout, settings.max_turn_tokens or None),
        system_prompt=system_prompt or SYSTEM_PROMPT,
        audit=audit,
    )
    sessions = SessionManager(store, loop, settings.approval_timeout, describe_prompt)
    sessions.planner = Scheduler(
        loop,
        store,
        max_parallel_tasks=settings.max_parallel_tasks,
        approval_timeout=settings.approval_timeout,
        task_retries=settings.task_retries,
        max_replans=settings.max_replans,
    )
    return Engine(llm, router, loop, sessions, store, local_model)


def browser_config(settings: Any, server_url: str | None = None) -> BrowserConfig:
    """The headless browser's configuration from the ``browser_*`` settings."""
    from jupyter_agent.browser import BrowserConfig

    config = BrowserConfig(
        endpoint=settings.browser_endpoint or None,
        allow=list(settings.browser_allow),
        deny=list(settings.browser_deny),
        allow_file_urls=settings.browser_allow_file_urls,
        server_url=server_url,
        pool_size=settings.browser_pool_size,
        idle_timeout=settings.browser_idle_timeout,
        cache_ttl=settings.browser_cache_ttl,
        memory_limit_mb=settings.browser_memory_limit_mb or None,
    )
    if settings.browser_executable:
        config.executable_path = settings.browser_executable
    return config
