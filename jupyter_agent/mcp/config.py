"""The ``mcp_servers`` setting: one entry per MCP server, checked once, and the names its tools get.

This module imports nothing beyond the standard library: the settings check entries with it, and a kernel or
the CLI reading the settings does not load the ``mcp`` SDK.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

#: What tool names may hold for every provider the agent talks to (OpenAI, Anthropic: ^[a-zA-Z0-9_-]{1,64}$).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
PREFIX = "mcp_"
POLICIES = ("allow", "ask", "deny")
KEYS = {"command", "args", "env", "cwd", "url", "headers", "policy", "timeout"}


@dataclass(frozen=True)
class ServerSpec:
    """One MCP server: a command to start (stdio) or a URL (streamable HTTP), with its credentials."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    policy: str = "ask"  # the default policy of its tools; tool_policy still decides per tool name
    timeout: float = 120.0  # seconds one call may take

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def secrets(self) -> list[str]:
        """Values to hide wherever they appear: its environment's and headers' values (keys, tokens), and a
        header's credential without its scheme (the token of ``Bearer <token>``)."""
        credentials = [v.split(" ", 1)[1] for v in self.headers.values() if " " in v.strip()]
        return [v for v in (*self.env.values(), *self.headers.values(), *credentials) if v.strip()]

    @classmethod
    def parse(cls, name: Any, entry: Any) -> ServerSpec:
        """The spec of ``c.JupyterAgent.mcp_servers[name]``; ValueError saying what to fix otherwise."""
        where = f"mcp_servers[{name!r}]"
        if not isinstance(name, str) or not SERVER_NAME.match(name):
            raise ValueError(f"{where}: a server's name must be 1-32 letters, digits, '_' or '-'")
        if not isinstance(entry, dict):
            raise ValueError(f'{where} must be a dict: {{"command": ..., "args": [...]}} or {{"url": ...}}')
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(KEYS)}")
        command, url = entry.get("command"), entry.get("url")
        if bool(command) == bool(url):
            raise ValueError(f'{where} needs either "command" (stdio) or "url" (streamable HTTP), not both')
        if url is not None and not (isinstance(url, str) and re.match(r"^https?://", url)):
            raise ValueError(f"{where}: url must be an http:// or https:// URL")
        if command is not None and not isinstance(command, str):
            raise ValueError(f"{where}: command must be a string (the program; its arguments go in args)")
        args = entry.get("args", [])
        if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{where}: args must be a list of strings")
        env, headers = (
            _strings(where, "env", entry.get("env")),
            _strings(where, "headers", entry.get("headers")),
        )
        policy = entry.get("policy", "ask")
        if policy not in POLICIES:
            raise ValueError(f"{where}: policy must be one of {POLICIES}; got {policy!r}")
        timeout = entry.get("timeout", 120.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"{where}: timeout must be a positive number of seconds")
        cwd = entry.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ValueError(f"{where}: cwd must be a string")
        return cls(name, command, tuple(args), env, cwd, url, headers, policy, float(timeout))


def _strings(where: str, key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{where}: {key} must be a dict of strings")
    return dict(value)


def parse_servers(servers: dict[str, Any]) -> list[ServerSpec]:
    """Every configured server's spec (raises ValueError on the first bad entry)."""
    return [ServerSpec.parse(name, entry) for name, entry in servers.items()]


def tool_name(server: str, remote: str) -> str:
    """The agent's name for tool ``remote`` of ``server``: ``mcp_<server>_<tool>``, within the providers'
    limits (letters, digits, '_' and '-'; at most 64 characters). A name that had to change gets a short hash
    of the original, so two tools never end up with the same name."""
    wanted = f"{PREFIX}{server}_{remote}"
    if TOOL_NAME.match(wanted):
        return wanted
    digest = hashlib.sha256(remote.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", remote)
    head = f"{PREFIX}{server}_{clean}"[: 64 - len(digest) - 1]
    return f"{head}_{digest}"


def server_secrets(servers: dict[str, Any]) -> list[str]:
    """The credentials in the configured servers' environments and headers: values to hide everywhere."""
    return [secret for spec in parse_servers(servers) for secret in spec.secrets()]
