"""The Jupyter server extension: configuration, wiring and routes (the composition root)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, validate

from jupyter_agent import __version__
from jupyter_agent.browser import BrowserConfig
from jupyter_agent.browser.service import BrowserService
from jupyter_agent.collaboration.documents import YDocProvider
from jupyter_agent.collaboration.execution import CellRunner
from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.collaboration.notebooks import NotebookEditor
from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.loop import AgentLoop, Budget
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.scheduler import Scheduler
from jupyter_agent.engine.session import SessionManager, Turn
from jupyter_agent.engine.types import ToolCall
from jupyter_agent.server import browser_handlers, handlers
from jupyter_agent.server.kernels import ServerKernels
from jupyter_agent.server.service import AgentService
from jupyter_agent.server.shutdown import install_shutdown_workaround
from jupyter_agent.server.websocket import SessionWebSocket
from jupyter_agent.store import Store
from jupyter_agent.tools import builtin_tools
from jupyter_agent.tools.base import POLICIES, ToolContext
from jupyter_agent.tools.browser import BROWSER_TOOLS

SESSION = r"(?P<session_id>[A-Za-z0-9_-]{1,64})"


def describe_prompt(text: str, context: dict[str, Any]) -> str:
    """The user's message as the model reads it: the text plus the document it names, if any."""
    notebook = context.get("notebook")
    if isinstance(notebook, str) and notebook:
        return f"[Active notebook: {notebook}]\n{text}"
    return text


class JupyterAgent(ExtensionApp):
    """An AI agent that works in the notebooks and files people have open."""

    name = "jupyter_agent"
    description = __doc__

    model = Unicode(
        os.environ.get("JUPYTER_AGENT_MODEL", ""),
        config=True,
        help="""The litellm model string, e.g. 'openai/gpt-4o-mini', 'anthropic/claude-3-5-sonnet-latest' or
        'openai/<name>' with model_options.api_base for any OpenAI-compatible server (a LiteLLM proxy,
        vLLM, llama.cpp). Defaults to the JUPYTER_AGENT_MODEL environment variable.""",
    )
    model_options = Dict(
        config=True,
        help="""Extra arguments for every litellm call: api_base, api_key, temperature, ... An api_key here is
        never logged; litellm's provider variables (OPENAI_API_KEY, ...) work too.""",
    )
    fallback_models = List(
        Unicode(), config=True, help="Models tried in order when the main model fails after its retries."
    )
    models = List(Unicode(), config=True, help="More models people may pick in the chat panel.")
    max_steps = Int(25, config=True, help="Most model calls in one turn before it stops (reason max_steps).")
    turn_timeout = Float(900.0, config=True, help="Seconds a whole turn may take before it is stopped.")
    max_turn_tokens = Int(0, config=True, help="Most prompt+completion tokens in one turn; 0 means no limit.")
    retries = Int(
        2, config=True, help="Retries per model on 429, 5xx and timeouts before any output streamed."
    )
    vision = Bool(
        None,
        allow_none=True,
        config=True,
        help="""Send images (screenshots, plots) to the model as image content. None: when litellm says the
        model supports vision; True/False: always/never (then the model gets a text note instead).""",
    )
    retry_backoff = Float(0.5, config=True, help="Seconds before the first retry; doubled for each next one.")
    request_timeout = Float(120.0, config=True, help="Seconds to wait for a model's first chunk.")
    chunk_timeout = Float(60.0, config=True, help="Seconds allowed between two chunks of a model's stream.")
    tool_policy = Dict(
        Unicode(),
        config=True,
        help="Policy per tool name: 'allow', 'ask' (a person approves each call) or 'deny'. shell_run asks by default.",
    )
    approval_timeout = Float(
        600.0,
        config=True,
        help="Seconds an approval request waits for a person before the turn ends with an error.",
    )
    cell_timeout = Float(
        300.0, config=True, help="Default seconds a cell may run before the kernel is interrupted."
    )
    transcription_model = Unicode(
        "whisper-1",
        config=True,
        help="litellm model for voice input (speech to text), e.g. 'whisper-1' or 'groq/whisper-large-v3'.",
    )
    browser_executable = Unicode(
        "",
        config=True,
        help="Chromium to drive. Empty: Debian's /usr/bin/chromium if present, else Playwright's own.",
    )
    browser_endpoint = Unicode(
        "",
        config=True,
        help="""Use a remote browser instead of launching one: ws://... (a Playwright server) or http(s)://...
        (Chrome DevTools Protocol). Empty: launch Chromium on this machine.""",
    )
    browser_allow = List(
        Unicode(),
        config=True,
        help="URL patterns the browser may open (glob or re:regex); empty: any http(s) URL.",
    )
    browser_deny = List(
        Unicode(), config=True, help="URL patterns the browser must not open; checked before browser_allow."
    )
    browser_allow_file_urls = Bool(False, config=True, help="Let the browser open file: URLs.")
    browser_pool_size = Int(
        2, config=True, help="Browser contexts kept warm so a new chat never waits for one."
    )
    browser_idle_timeout = Float(
        600.0, config=True, help="Seconds after which an unused chat's browser context closes."
    )
    browser_cache_ttl = Float(
        60.0, config=True, help="Seconds a fetched page's result may be served from the cache."
    )
    browser_memory_limit_mb = Int(
        0, config=True, help="Restart the browser when its memory exceeds this (MB); 0: never."
    )
    db_path = Unicode(
        "",
        config=True,
        help="SQLite file for sessions, events and the audit log. Empty: <jupyter data dir>/agent/agent.db.",
    )
    backup_dir = Unicode(
        "", config=True, help="Where file backups go. Empty: <jupyter data dir>/agent/backups."
    )
    max_message_bytes = Int(
        1_048_576, config=True, help="Largest WebSocket message accepted from a client, in bytes."
    )
    max_parallel_tasks = Int(
        3,
        config=True,
        help="""Most tasks of one plan that run at the same time (each is an agent turn of its own). Tasks
        that edit the same notebook never run at the same time whatever this is.""",
    )
    local_model = Unicode(
        os.environ.get("JUPYTER_AGENT_LOCAL_MODEL", "qwen2.5-coder-1.5b"),
        config=True,
        help="""The embedded model used when no model is configured (and the 'local' extra is installed):
        'qwen2.5-coder-1.5b' (default), 'qwen2.5-coder-0.5b' (the 'local-small' extra: half the RAM, twice
        as fast, weaker tool calls) or 'smollm2-135m' (wiring checks only). 'none' turns it off. Defaults to
        the JUPYTER_AGENT_LOCAL_MODEL environment variable.""",
    )
    local_model_threads = Int(
        0, config=True, help="CPU threads for the embedded model; 0: every core this process may use."
    )

    @validate("local_model")
    def _check_local_model(self, proposal: dict[str, Any]) -> str:
        from jupyter_agent.local_model.registry import MODELS

        value = proposal["value"]
        if value and value.lower() != "none" and value not in MODELS:
            raise ValueError(f"local_model must be one of {sorted(MODELS)} or 'none'; got {value!r}")
        return value

    @validate("tool_policy")
    def _check_policy(self, proposal: dict[str, Any]) -> dict[str, str]:
        value = proposal["value"]
        bad = {k: v for k, v in value.items() if v not in POLICIES}
        if bad:
            raise ValueError(f"tool_policy values must be one of {POLICIES}; got {bad}")
        return value

    @validate("max_steps", "max_message_bytes", "max_parallel_tasks")
    def _check_positive(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise ValueError(f"{proposal['trait'].name} must be at least 1")
        return proposal["value"]

    def _data_path(self, configured: str, name: str) -> Path:
        return Path(configured) if configured else Path(jupyter_data_dir()) / "agent" / name

    def initialize_settings(self) -> None:
        install_shutdown_workaround()
        root = Path(os.path.realpath(os.path.expanduser(self.serverapp.root_dir)))
        self.llm = LLMClient(
            model=self.model,
            options=dict(self.model_options),
            fallback_models=list(self.fallback_models),
            retries=self.retries,
            backoff=self.retry_backoff,
            request_timeout=self.request_timeout,
            chunk_timeout=self.chunk_timeout,
            vision=self.vision,
        )
        self.llm.preload()  # import and warm litellm in a worker thread: neither start nor first message waits
        self.local_server = None
        if not self.model:  # no model configured: the embedded one, started in the background
            from jupyter_agent.local_model.server import configure

            self.local_server = configure(
                self.llm,
                self.local_model,
                Path(jupyter_data_dir()) / "agent" / "models",
                threads=self.local_model_threads,
            )
        documents = YDocProvider(self.serverapp.web_app.settings, root)
        editor = NotebookEditor(documents)
        self.kernels = ServerKernels(self.serverapp)
        runner = CellRunner(editor, self.kernels, self.cell_timeout)
        workspace = Workspace(root, self._data_path(self.backup_dir, "backups"), documents)
        store = Store(self._data_path(self.db_path, "agent.db"))
        router = ToolRouter([*builtin_tools(), *BROWSER_TOOLS], dict(self.tool_policy), state=store)
        router.load_entry_points()
        self.browser = BrowserService(self._browser_config())  # starts on first use, then stays warm
        self.tool_services = {
            "workspace": workspace,
            "notebooks": editor,
            "cells": runner,
            "browser": self.browser,
        }
        self.root = root

        def context_factory(turn: Turn, call: ToolCall) -> ToolContext:
            return ToolContext(
                session_id=turn.session.id,
                root_dir=root,
                user=(turn.user or {}).get("username"),
                call_id=call.id,
                services=self.tool_services,
                emit=lambda kind, fields: turn.emit(kind, call_id=call.id, **fields),
            )

        service: AgentService

        def audit(turn: Turn, call: ToolCall, arguments: Any, result: Any, elapsed_ms: float) -> None:
            service.audit(
                turn.session.id,
                turn.user,
                f"tool:{call.name}",
                {"arguments": arguments, "ok": result.ok, "duration_ms": round(elapsed_ms, 1)},
            )

        loop = AgentLoop(
            self.llm,
            router,
            context_factory,
            Budget(self.max_steps, self.turn_timeout, self.max_turn_tokens or None),
            audit=audit,
        )
        sessions = SessionManager(store, loop, self.approval_timeout, describe_prompt)
        sessions.planner = Scheduler(
            loop, store, max_parallel_tasks=self.max_parallel_tasks, approval_timeout=self.approval_timeout
        )
        models = [m for m in dict.fromkeys([self.llm.model, *self.fallback_models, *self.models]) if m]
        service = AgentService(
            store, sessions, router, self.llm, workspace, __version__, self.max_message_bytes, models
        )
        service.local_model = self.local_server
        self.service = service

    def _browser_config(self) -> BrowserConfig:
        config = BrowserConfig(
            endpoint=self.browser_endpoint or None,
            allow=list(self.browser_allow),
            deny=list(self.browser_deny),
            allow_file_urls=self.browser_allow_file_urls,
            server_url=self.serverapp.connection_url,
            pool_size=self.browser_pool_size,
            idle_timeout=self.browser_idle_timeout,
            cache_ttl=self.browser_cache_ttl,
            memory_limit_mb=self.browser_memory_limit_mb or None,
        )
        if self.browser_executable:
            config.executable_path = self.browser_executable
        return config

    def initialize_handlers(self) -> None:
        base = "/api/agent"
        self.handlers.extend(
            [
                (f"{base}/health", handlers.HealthHandler),
                (f"{base}/tools", handlers.ToolsHandler),
                (f"{base}/transcribe", handlers.TranscribeHandler),
                (f"{base}/sessions", handlers.SessionsHandler),
                (f"{base}/sessions/{SESSION}", handlers.SessionHandler),
                (f"{base}/sessions/{SESSION}/events", handlers.EventsHandler),
                (f"{base}/sessions/{SESSION}/plan", handlers.PlanHandler),
                (f"{base}/sessions/{SESSION}/files/restore", handlers.RestoreHandler),
                (f"{base}/sessions/{SESSION}/ws", SessionWebSocket),
                (f"{base}/sessions/{SESSION}/browser", browser_handlers.BrowserStateHandler),
                (f"{base}/sessions/{SESSION}/browser/ws", browser_handlers.BrowserWebSocket),
            ]
        )

    async def stop_extension(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            await service.sessions.close()
            service.store.close()
        browser = getattr(self, "browser", None)
        if browser is not None:
            await browser.close()
        kernels = getattr(self, "kernels", None)
        if kernels is not None:
            kernels.close()
        local_server = getattr(self, "local_server", None)
        if local_server is not None:
            await asyncio.to_thread(local_server.stop)
