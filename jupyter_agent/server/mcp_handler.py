"""``/api/agent/mcp``: the agent's tools over MCP streamable HTTP, inside the Jupyter server and behind its auth.

The handler authenticates and authorises like every agent route (``@web.authenticated``, ``@authorized`` on
the ``agent`` resource), then hands the request to the MCP SDK's transport as an ASGI call, with the person
it acts for in the scope's ``state``; each tool call is then checked against that person's own rights (see
:mod:`jupyter_agent.mcp.server`). A request without credentials gets 401, and nothing listens on another port.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_agent.mcp.server import PRINCIPAL
from jupyter_agent.server.handlers import AgentHandler

#: Headers tornado writes itself (it frames the body as it is sent).
FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


class MCPHandler(AgentHandler):
    """MCP streamable HTTP: POST carries JSON-RPC messages (GET and DELETE are answered by the transport)."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._gone = asyncio.Event()

    def get_login_url(self) -> str:
        """No login page for a program: 401, saying which credentials to send."""
        raise web.HTTPError(401, "send the Jupyter server's token: an 'Authorization: token <token>' header")

    def check_xsrf_cookie(self) -> None:
        """A POST with no credentials at all is unauthenticated (401), not a forged browser request (403)."""
        if hasattr(self, "_jupyter_current_user") and self.current_user is None:
            self.get_login_url()
        super().check_xsrf_cookie()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'token realm="jupyter"')
        super().write_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        self._gone.set()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self._serve()

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self._serve()

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        await self._serve()

    async def _serve(self) -> None:
        """Run the request through the SDK's ASGI transport, streaming its answer back through tornado."""
        request = self.request
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": request.version.removeprefix("HTTP/") or "1.1",
            "method": request.method,
            "scheme": request.protocol,
            "path": request.path,
            "raw_path": request.path.encode("latin-1"),
            "query_string": request.query.encode("latin-1"),
            "root_path": "",
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.get_all()
            ],
            "client": (request.remote_ip or "", 0),
            "state": {PRINCIPAL: self.principal},
        }
        content_type = "application/json"
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": request.body or b"", "more_body": False}
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal content_type
            if message["type"] == "http.response.start":
                self.set_status(message["status"])
                for key, value in message.get("headers", []):
                    name, text = key.decode("latin-1"), value.decode("latin-1")
                    if name.lower() == "content-type":
                        content_type = text
                    elif name.lower() not in FRAMING:
                        self.add_header(name, text)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    self.write(message["body"])
                if message.get("more_body"):
                    self.set_header("Content-Type", content_type)
                    await self.flush()

        try:
            await self.extensionapp.mcp_server.handle(scope, receive, send)
        finally:
            self._gone.set()
        if not self._finished:
            self.finish(set_content_type=content_type)
