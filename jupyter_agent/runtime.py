"""The agent engine outside the Jupyter server, built from the same configuration.

The magics, the agent kernel and the CLI all run the engine in their own process. They read the
``JupyterAgent`` settings from the same Jupyter config files the server reads (``jupyter_config``,
``jupyter_jupyter_agent_config`` and ``jupyter_server_config``, ``.py`` and ``.json``, on
``jupyter_config_path()``), so a model configured for JupyterLab works in a kernel and in a terminal too;
litellm's own environment variables (``OPENAI_API_KEY``, ``OPENAI_API_BASE``, ...) work as they do in the
server, and ``JUPYTER_AGENT_MODEL`` names the model when no config file does.

:func:`load_agent_config` only reads files (it is cheap and imports nothing heavy), so a front end can say
"no model is configured" at once; :func:`build_runtime` imports the engine.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_agent.composition import Engine, data_path
from jupyter_agent.errors import AgentError

if TYPE_CHECKING:
    from jupyter_agent.engine.session import Session
    from jupyter_agent.store import Store
    from jupyter_agent.tools.base import Tool

log = logging.getLogger(__name__)

#: Config files the server reads for the extension, lowest priority first (the server's own file wins).
CONFIG_FILES = ("jupyter_config", "jupyter_jupyter_agent_config", "jupyter_server_config")
SECTION = "JupyterAgent"

NO_MODEL = (
    "No model is configured. Set the JUPYTER_AGENT_MODEL environment variable (e.g. "
    "JUPYTER_AGENT_MODEL=openai/gpt-4o-mini with OPENAI_API_KEY) or c.JupyterAgent.model in "
    "jupyter_server_config.py, or pass a model (--model)."
)

EventCallback = Callable[[dict[str, Any]], None]


def load_config_files(paths: Iterable[str] | None = None) -> Any:
    """The Jupyter config files the server reads for the agent, merged as the server merges them.

    ``paths`` defaults to ``jupyter_config_path()`` (highest priority first, like the server's). A file
    that fails to load is logged and skipped, as the server does. Returns a traitlets ``Config``.
    """
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader

    search = list(paths) if paths is not None else jupyter_config_path()
    merged = Config()
    for base in CONFIG_FILES:
        for folder in reversed(search):  # lowest priority first: later loads win
            for loader_cls, ext in ((PyFileConfigLoader, ".py"), (JSONFileConfigLoader, ".json")):
                loader = loader_cls(base + ext, path=folder, log=log)
                try:
                    merged.merge(loader.load_config())
                except ConfigFileNotFound:
                    continue
                except Exception:
                    log.warning(
                        "Skipping config file %s: it failed to load", loader.full_filename, exc_info=True
                    )
    return merged


def load_agent_config(paths: Iterable[str] | None = None) -> dict[str, Any]:
    """The agent's settings set in the Jupyter config files: ``JupyterAgent`` over its groups' sections."""
    from jupyter_agent.settings import SETTINGS_CLASSES

    merged = load_config_files(paths)
    values: dict[str, Any] = {}
    for cls in reversed(SETTINGS_CLASSES):  # the groups first, JupyterAgent (first in the list) last: it wins
        if cls.__name__ in merged:
            values.update(merged[cls.__name__])
    return values


def configured_model(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    """The model a turn uses unless it names one: overrides, then the config files, then the environment."""
    for candidate in (
        (overrides or {}).get("model"),
        config.get("model"),
        os.environ.get("JUPYTER_AGENT_MODEL"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return ""


def configured_local_model(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    """The embedded model used when no model is configured (the ``local_model`` setting, or its default)."""
    return str(agent_settings(config, overrides).local_model)


def agent_settings(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    """A ``JupyterAgent`` carrying the configured traits (validated, with their defaults); never started."""
    from traitlets.config import Config

    from jupyter_agent.settings import JupyterAgent

    values = {**config, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    values["model"] = configured_model(config, overrides)
    return JupyterAgent(config=Config({SECTION: values}))


@dataclass
class LocalAgent(Engine):
    """The engine of one process, with the settings it was built from, its tool services and its user."""

    settings: Any = None  # the JupyterAgent traits in effect
    root_dir: Path = field(default_factory=Path.cwd)
    services: dict[str, Any] = field(default_factory=dict)
    user: str | None = None

    @property
    def model(self) -> str:
        """The model turns use by default (``local/<name>`` for the embedded one), or ''."""
        return self.llm.model or ""

    def allow_tools_that_ask(self) -> None:
        """Let every tool whose policy is 'ask' run unasked, even after a web page was read (``--yes``)."""
        for name in self.router.names:
            if self.router.policy_for(name) == "ask":
                self.router.policy_overrides[name] = "allow"
        self.router.untrusted_content_policy = "allow"

    def check_model(self, model: str | None = None) -> None:
        if not (model or self.llm.model):
            raise AgentError(self.llm.no_model_hint or NO_MODEL, code="no_model")

    async def run(
        self,
        session: Session,
        text: str,
        *,
        context: dict[str, Any] | None = None,
        model: str | None = None,
        on_event: EventCallback | None = None,
        plan: bool = False,
        auto: bool = True,
    ) -> dict[str, Any]:
        """Send one prompt to ``session`` and wait for its turn to end; returns the ``done``/``error`` event.

        ``on_event`` sees every event of the turn as it is logged (the user's message first, the terminal
        event last; a plan's task events carry ``task``). ``plan`` plans the goal into tasks first; ``auto``
        runs the plan at once, else it waits for ``session.plan_approve()``. Cancelling this coroutine cancels
        the turn, waits for its ``done`` event and re-raises.
        """
        from jupyter_agent.engine.types import TERMINAL_EVENTS

        self.check_model(model)
        finished: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        turn_id: str | None = None
        early: list[dict[str, Any]] = []

        def listen(event: dict[str, Any]) -> None:
            if turn_id is None:  # only submit() itself emits before the turn id is known: its user message
                early.append(event)
                return
            if event.get("turn") != turn_id:
                return
            if on_event is not None:
                on_event(event)
            if event["type"] in TERMINAL_EVENTS and not finished.done():
                finished.set_result(event)

        session.subscribe(listen, after=None)
        try:
            user = {"username": self.user, "display_name": self.user} if self.user else None
            extra = {"plan": True, "auto": auto} if plan else {}
            turn = session.submit(text, context or {}, user, model, **extra)
            turn_id = turn.id
            for event in early:
                listen(event)
            try:
                return await asyncio.shield(finished)
            except asyncio.CancelledError:
                session.cancel()
                await asyncio.wait_for(asyncio.shield(finished), 30)
                raise
        finally:
            session.unsubscribe(listen)

    def named_session(self, name: str, title: str = "") -> Session:
        """The session remembered under ``name`` in the store (created the first time)."""
        from jupyter_agent.errors import NotFound

        key = f"named_session:{name}"
        session_id = self.store.get_value(key)
        if session_id:
            try:
                return self.sessions.get(session_id)
            except NotFound:
                pass
        session = self.sessions.create(title or name, owner=self.user)
        self.store.set_value(key, session.id)
        return session

    async def close(self) -> None:
        await super().close()
        browser = self.services.get("browser")
        if browser is not None:
            await browser.close()


def build_runtime(
    root_dir: str | Path,
    services: dict[str, Any] | None = None,
    *,
    tools: Iterable[Tool] | None = None,
    extra_tools: Iterable[Tool] = (),
    overrides: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    settings: Any = None,
    policy: dict[str, str] | None = None,
    system_prompt: str | None = None,
    load_entry_points: bool = True,
    role: str = "kernel",
) -> LocalAgent:
    """Compose the engine the way the server does, for a process of its own.

    ``services`` are the tool services (``workspace``, ``notebooks``, ``cells``, ``python``, ...); a
    ``workspace`` on ``root_dir`` is added when missing. ``tools`` defaults to the built-in tools;
    ``overrides`` are ``JupyterAgent`` trait values that win over the config files (e.g. ``model``);
    ``settings`` (a :class:`~jupyter_agent.settings.JupyterAgent`) replaces both; ``policy`` is merged over
    ``tool_policy``. With no model configured anywhere, the embedded offline
    model runs (as in the server) when it is installed. Call :meth:`LocalAgent.close` when done.
    """
    from jupyter_agent.collaboration.files import Workspace
    from jupyter_agent.composition import compose_engine
    from jupyter_agent.tools import builtin_tools

    if settings is None:
        settings = agent_settings(load_agent_config() if config is None else config, overrides)
    root = Path(os.path.realpath(os.path.expanduser(str(root_dir))))
    services = dict(services or {})
    services.setdefault("workspace", Workspace(root, data_path(settings.backup_dir, "backups")))
    chosen = list(builtin_tools() if tools is None else tools) + list(extra_tools)
    engine = compose_engine(
        settings,
        root,
        services,
        chosen,
        policy=policy,
        system_prompt=system_prompt,
        load_entry_points=load_entry_points,
        role=role,
    )
    return LocalAgent(**vars(engine), settings=settings, root_dir=root, services=services, user=_username())


def open_store(config: dict[str, Any] | None = None) -> Store:
    """The configured store, for reading sessions without building the engine."""
    from jupyter_agent.store import Store

    cfg = load_agent_config() if config is None else config
    return Store(data_path(str(cfg.get("db_path") or ""), "agent.db"), role="cli")


def _username() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (containers without passwd entries)
        return None
