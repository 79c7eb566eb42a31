"""The tool protocol: what a tool declares and what it receives when it runs.

A tool is a named async function with a JSON schema for its arguments. Tools reach documents, kernels, the
browser and the file system only through the :class:`ToolContext` they are given, so the same tool runs in
the server, in a kernel and in the CLI.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Policy = Literal["allow", "ask", "deny"]
POLICIES: tuple[str, ...] = ("allow", "ask", "deny")

#: What the person who started a turn must be allowed to do for a tool to run for them: a Jupyter Server
#: authorization (resource, action), e.g. ``("kernels", "execute")``, ``("contents", "write")``.
Permission = tuple[str, str]
SIDE_EFFECTS: frozenset[Permission] = frozenset(
    {("kernels", "execute"), ("terminals", "execute"), ("contents", "write")}
)


@dataclass
class ImagePart:
    """An image a tool produced (a screenshot, a plot): base64 data with its MIME type."""

    mime: str
    data: str  # base64
    description: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"mime": self.mime, "data": self.data, "description": self.description}


@dataclass
class ToolResult:
    """What a tool returns. ``text`` is what the model reads; ``data`` feeds the UI's result renderers."""

    text: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    images: list[ImagePart] = field(default_factory=list)

    @classmethod
    def error(cls, message: str, **data: Any) -> ToolResult:
        return cls(text=f"Error: {message}", ok=False, data=data)


@dataclass
class ToolContext:
    """Everything a tool may touch, for one call.

    ``services`` holds optional capabilities by name (``"workspace"``, ``"notebooks"``, ``"browser"``, ...);
    a tool asks for the one it needs with :meth:`service` and gets a clear error where it is not available.
    """

    session_id: str
    root_dir: Path
    user: str | None = None
    call_id: str = ""
    services: dict[str, Any] = field(default_factory=dict)
    #: Sends a progress event for this call to the session (type, fields); a no-op outside a session.
    emit: Callable[[str, dict[str, Any]], None] = lambda _type, _fields: None
    #: Why the person who started the turn may not use a permission (None: they may). None here: every
    #: permission is the process's own (kernels, the CLI: the person is the process's user).
    authorize: Callable[[Permission], Awaitable[str | None]] | None = None
    #: What this turn has read from outside the workspace so far (URLs, shared by the turn's calls).
    untrusted: list[str] = field(default_factory=list)
    #: Records one change the call made to a notebook or file, for the turn's review and undo (a no-op
    #: outside a session); see :mod:`jupyter_agent.collaboration.review`.
    record: Callable[[dict[str, Any]], None] = lambda _change: None
    #: In review mode, the marker of the turn's pending edits (``{"session", "turn"}``); None: edits apply.
    pending: dict[str, str] | None = None

    def changed(self, done: dict[str, Any]) -> dict[str, Any]:
        """``done`` without its ``change``, which is recorded (the tools' results carry what the UI shows)."""
        change = done.pop("change", None)
        if change is not None:
            self.record(change)
        return done

    def service(self, name: str) -> Any:
        try:
            return self.services[name]
        except KeyError:
            from jupyter_agent.errors import ToolError

            raise ToolError(f"the {name!r} service is not available here") from None


ToolFunction = Callable[..., Awaitable["ToolResult | str"]]


@dataclass
class Tool:
    """A tool the model can call."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFunction
    policy: Policy = "allow"  # default policy; configuration overrides it per tool
    timeout: float | None = 60.0  # seconds; None means the tool handles its own time limit
    #: The argument that carries a per-call timeout in seconds (e.g. ``shell_run(timeout=...)``), if any.
    timeout_argument: str | None = None
    #: Names of tools to try, in order, when this one fails with an infrastructure error.
    fallbacks: tuple[str, ...] = ()
    #: The permission the person must hold (checked with the Jupyter server's Authorizer); None: none
    #: beyond talking to the agent.
    permission: Permission | None = None
    #: Its results come from outside the workspace (web pages, fetched URLs): the turn has then read
    #: untrusted content, and tools with side effects ask before they run for the rest of it.
    reads_untrusted: bool = False

    @property
    def side_effects(self) -> bool:
        """Runs code or a shell, or writes files: what text from outside must not trigger unasked."""
        return self.permission in SIDE_EFFECTS

    def schema(self) -> dict[str, Any]:
        """The OpenAI/litellm ``tools=`` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        result = self.fn(ctx, **arguments)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return ToolResult(text=result)
        return result


def tool(
    name: str,
    description: str,
    parameters: dict[str, Any],
    *,
    policy: Policy = "allow",
    timeout: float | None = 60.0,
    timeout_argument: str | None = None,
    fallbacks: tuple[str, ...] = (),
    permission: Permission | None = None,
    reads_untrusted: bool = False,
) -> Callable[[ToolFunction], Tool]:
    """Declare a tool: ``@tool("file_read", "Read a text file", {...schema...})`` over ``async def f(ctx, ...)``."""

    def wrap(fn: ToolFunction) -> Tool:
        schema = {"type": "object", "additionalProperties": False, **parameters}
        return Tool(
            name,
            description,
            schema,
            fn,
            policy,
            timeout,
            timeout_argument,
            fallbacks,
            permission,
            reads_untrusted,
        )

    return wrap


def object_schema(required: list[str] | None = None, **properties: dict[str, Any]) -> dict[str, Any]:
    """A compact way to write a tool's argument schema."""
    schema: dict[str, Any] = {"properties": properties}
    if required:
        schema["required"] = required
    return schema
