"""Compose the agent engine from the ``JupyterAgent`` settings: one recipe for every process that runs it.

The server extension (:mod:`jupyter_agent.app`), the magics and agent kernel, and the CLI
(:mod:`jupyter_agent.runtime`) differ in their tool services (a live shared notebook or the kernel's own
namespace) and their tools; the model client, the embedded model when none is configured, the router and
its persisted statistics, the agent loop with its budgets, the audit log, sessions and the planner are built
here the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_agent.browser import BrowserConfig
    from jupyter_agent.engine.llm import LLMClient
    from jupyter_agent.engine.loop import AgentLoop
    from jupyter_agent.engine.metrics import Measurements, Sample
    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.engine.session import SessionManager
    from jupyter_agent.local_model.server import LocalModelServer
    from jupyter_agent.security.audit import AuditTrail
    from jupyter_agent.security.redaction import Redactor
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import Permission, Tool


def data_path(configured: str, name: str) -> Path:
    """Where the agent keeps a file: the configured path, else ``<jupyter data dir>/agent/<name>``."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(configured) if configured else Path(jupyter_data_dir()) / "agent" / name


def models_dir() -> Path:
    """Where the embedded models' joined GGUF files live: ``<jupyter data dir>/agent/models``."""
    return data_path("", "models")


def describe_prompt(text: str, context: dict[str, Any]) -> str:
    """The user's message as the model reads it: the text plus the document it names, if any, and the
    summaries of what the person attached (``@variable``, ``@cell``; see jupyter_agent.server.attachments)."""
    notebook = context.get("notebook")
    attached = [
        f"[Attached by the user: {a.get('label')}]\n{a['summary']}"
        for a in context.get("attachments") or []
        if isinstance(a, dict) and isinstance(a.get("summary"), str)
    ]
    if attached:
        text = "\n".join(attached) + f"\n[The user's message]\n{text}"
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
    redactor: Redactor | None = None  # what hides secrets from events, logs, the audit log and the model
    audit: AuditTrail | None = None  # writes the audit log
    #: Records every turn, model call and tool call (engine.metrics): the router's health and Prometheus.
    measurements: Measurements | None = None

    async def close(self) -> None:
        import asyncio

        await self.sessions.close()
        self.store.close()
        if self.measurements is not None and self.measurements.tracing is not None:
            self.measurements.tracing.shutdown()  # sends the spans still waiting
        if self.local_model is not None:
            await asyncio.to_thread(self.local_model.stop)


def make_llm(settings: Any) -> LLMClient:
    """The model client, with litellm imported and warmed in a worker thread (nothing waits for it)."""
    from jupyter_agent.engine.llm import LLMClient
    from jupyter_agent.engine.router import preload_validation

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
    preload_validation()  # the tool calls' validator (jsonschema) loads meanwhile too
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
    role: str = "server",
    secrets: Iterable[str] = (),
    authorize: Callable[[Any, Permission], Awaitable[bool]] | None = None,
) -> Engine:
    """The engine for ``settings`` (a ``JupyterAgent``), its tools working in ``root`` through ``services``.

    ``policy`` is merged over ``settings.tool_policy``; ``system_prompt`` replaces the default one; ``role``
    names this kind of process (``server``, ``kernel``, ``cli``) to the others that share the store;
    ``secrets`` are values to hide wherever they appear, besides the configured API keys and the secret
    environment variables (e.g. the Jupyter server's token). ``authorize(principal, permission)`` says
    whether the person a turn acts for holds a tool's permission (the server's Authorizer); without it,
    tools run with the process's own rights.
    """
    from jupyter_agent.collaboration.review import TurnReview
    from jupyter_agent.engine.budgets import Budgets
    from jupyter_agent.engine.context import ContextWindow
    from jupyter_agent.engine.loop import SYSTEM_PROMPT, AgentLoop, Budget
    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.engine.scheduler import Scheduler
    from jupyter_agent.engine.session import SessionManager, Turn
    from jupyter_agent.engine.types import ToolCall
    from jupyter_agent.security.audit import AuditTrail
    from jupyter_agent.security.boundary import Outbound
    from jupyter_agent.security.redaction import Redactor, redact_logs
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import ToolContext

    redactor = Redactor.for_settings(settings, None, *secrets)
    # Ours, and in the server the ServerApp's and tornado's (tracebacks of failed requests, warnings).
    redact_logs(redactor, also=("ServerApp", "JupyterAgent", "tornado.application", "tornado.general"))
    llm = make_llm(settings)
    llm.redactor = redactor
    local_model = embedded_model(llm, settings)
    store = Store(data_path(settings.db_path, "agent.db"), role=role)
    audit = AuditTrail(store, redactor, settings.audit_log_file or None)
    from jupyter_agent.tools.results import RESULT_TOOLS, ResultLog

    services.setdefault("results", ResultLog(store))  # read_result pages through long tool results
    tools = list(tools)
    tools += [t for t in RESULT_TOOLS if t.name not in {known.name for known in tools}]
    measurements = observe(settings, store)
    llm.measurements = measurements
    router = ToolRouter(list(tools), {**settings.tool_policy, **(policy or {})}, measurements)
    router.untrusted_content_policy = settings.untrusted_content_policy
    if load_entry_points:
        router.load_entry_points()

    def context_factory(turn: Turn, call: ToolCall) -> ToolContext:
        user = (turn.user or {}).get("username")
        check = None
        if authorize is not None:
            allowed = authorize

            async def check(permission: Permission) -> str | None:
                if await allowed(turn.principal, permission):
                    return None
                return f"not permitted: {user or 'this user'} lacks {permission[0]}:{permission[1]}"

        return ToolContext(
            session_id=turn.session.id,
            root_dir=root,
            user=user,
            call_id=call.id,
            services=services,
            emit=lambda kind, fields: turn.emit(kind, call_id=call.id, **fields),
            authorize=check,
            untrusted=turn.untrusted,
            record=lambda change: turn.session.record_change(turn, call.id, {**change, "root": str(root)}),
            pending={"session": turn.session.id, "turn": turn.id}
            if turn.session.edit_mode == "review"
            else None,
        )

    window = settings.context_tokens or (local_model.n_ctx if local_model is not None else 0)
    loop = AgentLoop(
        llm,
        router,
        context_factory,
        Budget(settings.max_steps, settings.turn_timeout, settings.max_turn_tokens or None),
        system_prompt=system_prompt or SYSTEM_PROMPT,
        context=ContextWindow(llm, window),
    )
    sessions = SessionManager(store, loop, settings.approval_timeout, describe_prompt)
    sessions.measurements = measurements
    sessions.review = TurnReview(store, services)
    sessions.edit_mode = settings.edit_mode
    sessions.budgets = Budgets(
        store, settings.user_requests_per_minute, settings.user_tokens_per_day, settings.user_cost_per_day
    )
    sessions.outbound = Outbound(redactor, audit)  # every event: redacted, and audited (prompts, tool calls)
    sessions.planner = Scheduler(
        loop,
        store,
        max_parallel_tasks=settings.max_parallel_tasks,
        approval_timeout=settings.approval_timeout,
        task_retries=settings.task_retries,
        max_replans=settings.max_replans,
    )
    measurements.probe(lambda: plan_task_samples(sessions.planner))
    if local_model is not None:
        measurements.probe(lambda: embedded_model_samples(local_model))
    return Engine(llm, router, loop, sessions, store, local_model, redactor, audit, measurements)


def observe(settings: Any, store: Store) -> Measurements:
    """The engine's measurements (tools' health refilled from ``store``'s audit log), with traces sent to
    ``otel_endpoint`` when set, and JSON logs when ``log_format`` is 'json'."""
    from jupyter_agent.engine.metrics import Measurements

    measurements = Measurements(history=store)
    if settings.otel_endpoint:
        from jupyter_agent.engine.tracing import Tracing

        measurements.tracing = Tracing.to_endpoint(settings.otel_endpoint, settings.otel_service_name)
    if settings.log_format == "json":
        from jupyter_agent.engine.logs import use_json_logs

        use_json_logs()
    return measurements


def plan_task_samples(planner: Any) -> list[Sample]:
    """The tasks of the plans being run, counted by state (for the ``plan_tasks`` gauge)."""
    counts: dict[str, int] = {}
    for run in list(getattr(planner, "runs", {}).values()):
        for task in run.plan.tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
    return [("plan_tasks", {"state": state}, float(n)) for state, n in counts.items()]


def embedded_model_samples(local_model: LocalModelServer) -> list[Sample]:
    """The embedded model's state, one sample per possible state (1 for the current one)."""
    status = local_model.status()
    states = ("stopped", "starting", "ready", "failed", "not_installed")
    model = str(status.get("name") or "")
    return [
        ("embedded_model_state", {"model": model, "state": s}, float(s == status["state"])) for s in states
    ]


def browser_samples(browser: Any) -> list[Sample]:
    """The browser pool's contexts by state and its memory (a BrowserService), for the metrics."""
    samples: list[Sample] = [
        ("browser_contexts", {"state": k}, float(n)) for k, n in browser.pool_state().items()
    ]
    if browser.memory_mb is not None:
        samples.append(("browser_memory_bytes", {}, browser.memory_mb * 1024 * 1024))
    return samples


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
        allowed_networks=list(settings.allowed_networks),
    )
    if settings.browser_executable:
        config.executable_path = settings.browser_executable
    return config
