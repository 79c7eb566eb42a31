"""The Jupyter server extension: configuration, wiring and routes (the composition root)."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp

from jupyter_agent import __version__
from jupyter_agent.browser.service import BrowserService
from jupyter_agent.collaboration.documents import YDocProvider
from jupyter_agent.collaboration.execution import CellRunner
from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.collaboration.notebooks import NotebookEditor
from jupyter_agent.collaboration.variables import KernelVariables
from jupyter_agent.composition import browser_config, browser_samples, compose_engine, data_path
from jupyter_agent.engine.prometheus import PrometheusExporter
from jupyter_agent.mcp.client import MCPConnections
from jupyter_agent.mcp.config import parse_servers, server_secrets
from jupyter_agent.mcp.server import AgentMCPServer
from jupyter_agent.server import browser_handlers, handlers
from jupyter_agent.server.access import SessionAccess, privacy_applies
from jupyter_agent.server.attachments import PromptAttachments
from jupyter_agent.server.authorization import PersonAuthorization
from jupyter_agent.server.kernels import ServerKernels
from jupyter_agent.server.mcp_handler import MCPHandler
from jupyter_agent.server.service import AgentService
from jupyter_agent.server.shutdown import install_shutdown_workaround
from jupyter_agent.server.websocket import SessionWebSocket
from jupyter_agent.settings import JupyterAgent
from jupyter_agent.tools import builtin_tools
from jupyter_agent.tools.browser import BROWSER_TOOLS

SESSION = r"(?P<session_id>[A-Za-z0-9_-]{1,64})"
TURN = r"(?P<turn>[A-Za-z0-9_-]{1,64})"


class AgentExtension(ExtensionApp, JupyterAgent):
    """An AI agent that works in the notebooks and files people have open.

    Its settings are :class:`~jupyter_agent.settings.JupyterAgent`'s (``c.JupyterAgent.<name>``), the same
    the kernel, the magics and the CLI read.
    """

    name = "jupyter_agent"
    description = __doc__

    def initialize_settings(self) -> None:
        install_shutdown_workaround()
        root = Path(os.path.realpath(os.path.expanduser(self.serverapp.root_dir)))
        documents = YDocProvider(self.serverapp.web_app.settings, root)
        editor = NotebookEditor(documents)
        self.kernels = ServerKernels(self.serverapp)
        # Files go through the server's ContentsManager: its hidden-file rules, storage and checkpoints.
        backups = data_path(self.backup_dir, "backups")
        workspace = Workspace(root, backups, documents, self.serverapp.contents_manager)
        # The browser starts on first use, then stays warm.
        self.browser = BrowserService(browser_config(self, self.serverapp.connection_url))
        self.tool_services = {
            "workspace": workspace,
            "notebooks": editor,
            "cells": CellRunner(editor, self.kernels, self.cell_timeout),
            "browser": self.browser,
            "variables": KernelVariables(self.kernels),
        }
        self.root = root
        identity = getattr(self.serverapp, "identity_provider", None)
        token = getattr(identity, "token", "") or ""
        # Tools run with the rights of the person whose prompt started the turn (the server's Authorizer).
        authorization = PersonAuthorization(self.serverapp.authorizer)
        self.access = SessionAccess(authorization, privacy_applies(self.session_privacy, identity))
        # A prompt's @mentions get their summaries when it is sent, with the sender's rights.
        self.attachments = PromptAttachments(self.tool_services["variables"], editor, authorization)
        engine = compose_engine(
            self,
            root,
            self.tool_services,
            [*builtin_tools(), *BROWSER_TOOLS],
            secrets=[token, *server_secrets(self.mcp_servers)],
            authorize=authorization,
        )
        self.engine = engine
        self.llm = engine.llm
        models = [m for m in dict.fromkeys([engine.llm.model, *self.fallback_models, *self.models]) if m]
        service = AgentService(
            engine.store,
            engine.sessions,
            engine.router,
            engine.llm,
            workspace,
            __version__,
            self.max_message_bytes,
            models,
        )
        service.local_model = engine.local_model
        service.trail = engine.audit
        service.browser = self.browser
        self.service = service
        if self.prometheus_metrics:  # jupyter_agent_* on the server's /metrics
            PrometheusExporter(engine.measurements)
            engine.measurements.probe(lambda: browser_samples(self.browser))
        # MCP both ways: the configured servers' tools join the router (connected once the loop runs), and
        # the agent's tools are served at /api/agent/mcp with each caller's own rights.
        self.mcp = MCPConnections(parse_servers(self.mcp_servers), engine.router, __version__)
        self.serverapp.io_loop.add_callback(self.mcp.start)
        service.mcp = self.mcp
        self.mcp_server = AgentMCPServer(
            engine.router, root, self.tool_services, authorization, engine.audit, __version__, self.mcp.owns
        )

    def initialize_handlers(self) -> None:
        base = "/api/agent"
        self.handlers.extend(
            [
                (f"{base}/health", handlers.HealthHandler),
                (f"{base}/tools", handlers.ToolsHandler),
                (f"{base}/transcribe", handlers.TranscribeHandler),
                (f"{base}/audit", handlers.AuditHandler),
                (f"{base}/analytics", handlers.AnalyticsHandler),
                (f"{base}/variables", handlers.VariablesHandler),
                (f"{base}/mcp", MCPHandler),
                (f"{base}/sessions", handlers.SessionsHandler),
                (f"{base}/sessions/{SESSION}", handlers.SessionHandler),
                (f"{base}/sessions/{SESSION}/events", handlers.EventsHandler),
                (f"{base}/sessions/{SESSION}/plan", handlers.PlanHandler),
                (f"{base}/sessions/{SESSION}/turns/{TURN}/changes", handlers.TurnChangesHandler),
                (
                    f"{base}/sessions/{SESSION}/turns/{TURN}/(?P<action>undo|redo|review)",
                    handlers.TurnActionHandler,
                ),
                (f"{base}/sessions/{SESSION}/files/restore", handlers.RestoreHandler),
                (f"{base}/sessions/{SESSION}/ws", SessionWebSocket),
                (f"{base}/sessions/{SESSION}/browser", browser_handlers.BrowserStateHandler),
                (f"{base}/sessions/{SESSION}/browser/ws", browser_handlers.BrowserWebSocket),
            ]
        )

    async def stop_extension(self) -> None:
        for mcp in (getattr(self, "mcp_server", None), getattr(self, "mcp", None)):
            if mcp is not None:
                await mcp.close()
        engine = getattr(self, "engine", None)
        if engine is not None:
            await engine.close()
        browser = getattr(self, "browser", None)
        if browser is not None:
            await browser.close()
        kernels = getattr(self, "kernels", None)
        if kernels is not None:
            kernels.close()
