"""The MCP server: the agent's notebook, file, kernel and browser tools for outside MCP clients.

It is served over MCP streamable HTTP inside the Jupyter server (``/api/agent/mcp``, see
:mod:`jupyter_agent.server.mcp_handler`), so Jupyter's authentication applies to every request. Each call runs
through the same router as the agent's own (argument checks, policy, timeouts, circuit breakers) with the
rights of the person whose credentials made the request: the tool's declared permission is checked with the
server's Authorizer, and the call is written to the audit log with their name. Nobody can answer an approval
over MCP, so a tool whose policy is "ask" is refused with a message saying how an administrator allows it.
Notebook edits go through the live shared documents, with the agent's presence, as in a chat turn.

The SDK's transport runs stateless with JSON answers: every request is authenticated on its own, nothing is
kept between them, and it works behind any proxy that serves Jupyter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_agent.engine.types import ToolCall
from jupyter_agent.tools.base import Permission, ToolContext, ToolResult

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from jupyter_agent.engine.router import ToolRouter
    from jupyter_agent.security.audit import AuditTrail

log = logging.getLogger(__name__)

#: Where the request handler leaves the person a request acts for (the ASGI scope's ``state``).
PRINCIPAL = "principal"
REFUSALS = frozenset({"not_permitted", "forbidden"})
INSTRUCTIONS = (
    "Tools of a Jupyter server: read and edit its notebooks (live: everyone who has one open sees the edits), "
    "run cells in their kernels, read and write files in its workspace, and browse the web. Paths are relative "
    "to the server's root directory."
)


class AgentMCPServer:
    """The agent's tools as an MCP server (the SDK's low-level ``Server``), for the request handler to serve.

    ``authorize(principal, permission)`` is the server's Authorizer for the person behind a request;
    ``exclude(name)`` leaves tools out (those of other MCP servers, which are not served again).
    """

    def __init__(
        self,
        router: ToolRouter,
        root: Path,
        services: dict[str, Any],
        authorize: Callable[[Any, Permission], Awaitable[bool]],
        audit: AuditTrail | None,
        version: str = "",
        exclude: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self.router = router
        self.root = root
        self.services = services
        self.authorize = authorize
        self.audit = audit
        self.version = version
        self.exclude = exclude
        self._manager: StreamableHTTPSessionManager | None = None
        self._started: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- serving --------------------------------------------------------------------------------------
    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer one HTTP request (ASGI) whose ``scope["state"]["principal"]`` is the person it acts for."""
        manager = await self._running()
        await manager.handle_request(scope, receive, send)

    async def _running(self) -> StreamableHTTPSessionManager:
        """The SDK's session manager, started on the first request (its import costs about a second, paid
        in a worker thread, so the server neither starts slower nor stalls)."""
        if self._started is None:
            self._started = asyncio.Lock()
        async with self._started:
            if self._manager is None:
                await asyncio.to_thread(importlib.import_module, "mcp.server.streamable_http_manager")
                from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

                manager = StreamableHTTPSessionManager(self.build(), json_response=True, stateless=True)
                ready, self._stop = asyncio.Event(), asyncio.Event()
                self._task = asyncio.get_running_loop().create_task(self._serve(manager, ready))
                await ready.wait()
                self._manager = manager
        return self._manager

    async def _serve(self, manager: StreamableHTTPSessionManager, ready: asyncio.Event) -> None:
        assert self._stop is not None
        async with manager.run():
            ready.set()
            await self._stop.wait()

    async def close(self) -> None:
        if self._stop is not None and self._task is not None:
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._task

    def build(self) -> Server[Any]:
        from mcp.server.lowlevel import Server

        return Server(
            "jupyter-agent",
            version=self.version,
            instructions=INSTRUCTIONS,
            get_tool_input_schema=self._input_schema,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # -- tools ----------------------------------------------------------------------------------------
    def served(self) -> list[str]:
        """The tools outside clients see: every tool of the agent's that policy does not deny."""
        return [n for n in self.router.names if not self.exclude(n) and self.router.policy_for(n) != "deny"]

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self.router.get(name) if name in self.served() else None
        return None if tool is None else tool.parameters

    async def _list_tools(self, ctx: Any, params: Any) -> Any:
        from mcp_types import ListToolsResult, Tool

        tools = []
        for name in self.served():
            tool = self.router.get(name)
            assert tool is not None
            tools.append(Tool(name=name, description=tool.description, input_schema=tool.parameters))
        return ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: Any, params: Any) -> Any:
        principal = _principal(ctx)
        name, arguments = params.name, dict(params.arguments or {})
        if principal is None:  # the handler always sets it; without it nobody is acting: refuse
            return _answer(ToolResult.error("this request carries no Jupyter identity"), None)
        if name not in self.served():
            choices = ", ".join(self.served())
            return _answer(ToolResult.error(f"unknown tool {name!r}. Available tools: {choices}"), None)
        user = principal.username
        vault = self.audit.redactor.vault(f"mcp:{user}") if self.audit is not None else None
        text = json.dumps(arguments, ensure_ascii=False)
        if vault is not None:  # placeholders the client got from an earlier answer stand for their values
            text = self.audit.redactor.restore_json(text, vault)  # type: ignore[union-attr]
        call = ToolCall(f"mcp-{uuid.uuid4().hex[:12]}", name, text)
        started = time.perf_counter()
        result = await self.router.call(call, self._context(principal, call.id))
        if result.data.get("code") == "nobody_to_ask":
            result = ToolResult.error(
                f"{name} needs a person's approval, which cannot be given over MCP, so it did not run; an "
                f'administrator can allow it with c.JupyterAgent.tool_policy = {{"{name}": "allow"}}',
                code="nobody_to_ask",
            )
        self._audit(user, call, arguments, result, (time.perf_counter() - started) * 1000, vault)
        return _answer(result, self.audit.redactor if self.audit is not None else None, vault)

    def _context(self, principal: Any, call_id: str) -> ToolContext:
        """A call's context: the person's rights, and a browser tab of their own (no chat session: the
        call's changes are not part of a turn to undo, and each call is judged on its own)."""

        async def check(permission: Permission) -> str | None:
            if await self.authorize(principal, permission):
                return None
            return f"not permitted: {principal.username} lacks {permission[0]}:{permission[1]}"

        digest = hashlib.sha256(principal.username.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return ToolContext(
            session_id=f"mcp-{digest}",
            root_dir=self.root,
            user=principal.username,
            call_id=call_id,
            services=self.services,
            authorize=check,
        )

    def _audit(
        self,
        user: str,
        call: ToolCall,
        arguments: dict[str, Any],
        result: ToolResult,
        elapsed_ms: float,
        vault: Any,
    ) -> None:
        if self.audit is None:
            return
        outcome = "ok" if result.ok else str(result.data.get("code") or "error")
        detail: dict[str, Any] = {
            "via": "mcp",
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
            "approval": None,
            "outcome": outcome,
            "ok": result.ok,
            "duration_ms": round(elapsed_ms, 1),
        }
        if not result.ok:
            detail["error"] = result.text.removeprefix("Error: ")[:300]
        try:
            self.audit.record(None, user, f"tool:{call.name}", detail, vault)
            if outcome in REFUSALS:
                refusal = {"via": "mcp", "tool": call.name, "call_id": call.id, "reason": detail["error"]}
                self.audit.record(None, user, "refused", refusal, vault)
        except Exception:
            log.exception("Could not write the audit entry of MCP call %s to %s", call.id, call.name)


def _principal(ctx: Any) -> Any:
    request = getattr(ctx, "request", None)
    state = getattr(request, "scope", {}).get("state") or {}
    return state.get(PRINCIPAL)


def _answer(result: ToolResult, redactor: Any, vault: Any = None) -> Any:
    """The MCP result of a tool's: its text (secrets replaced by placeholders) and its images."""
    from mcp_types import CallToolResult, ImageContent, TextContent

    text = result.text if redactor is None else redactor.redact_text(result.text, vault)
    content: list[Any] = [TextContent(text=text)]
    content += [ImageContent(data=image.data, mime_type=image.mime) for image in result.images]
    return CallToolResult(content=content, is_error=not result.ok)
