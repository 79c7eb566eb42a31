"""python_run and python_variables: the agent works in the live namespace of the kernel it runs in.

Both reach the namespace through the ``"python"`` service of the ToolContext (see :class:`PythonNamespace`).
In a kernel that service hands each request to the kernel's main thread, where IPython runs user code;
:func:`execute_in_shell` and :func:`jupyter_agent.tools.namespace.list_variables` are what run there.
Nothing here imports IPython at import time.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_agent.tools.base import ImagePart, ToolContext, ToolResult, object_schema, tool
from jupyter_agent.tools.installs import with_install_note

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DEFAULT_REPR = re.compile(r"^<[\w.]+ object( at 0x[0-9a-fA-F]+)?>$")
MAX_STREAM = 6_000  # characters of stdout / stderr the model reads
MAX_REPR = 2_000
MAX_IMAGES = 4
TRACEBACK_LINES = 15
DEFAULT_TIMEOUT = 120.0
IMAGE_MIMES = ("image/png", "image/jpeg")


@dataclass
class RunOutcome:
    """What running one piece of code produced."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None  # text/plain of the last expression's value
    error: str | None = None  # "Name: message"
    traceback: list[str] = field(default_factory=list)  # trimmed, without ANSI colours
    outputs: list[dict[str, Any]] = field(default_factory=list)  # rich outputs: {"data", "metadata"}
    interrupted: bool = False  # a KeyboardInterrupt stopped it (the user, or the time limit)

    @property
    def ok(self) -> bool:
        return self.error is None

    def images(self) -> list[ImagePart]:
        found = [
            ImagePart(mime, str(data[mime]).replace("\n", ""), "output of python_run")
            for data in (o.get("data") or {} for o in self.outputs)
            for mime in IMAGE_MIMES
            if mime in data
        ]
        return found[:MAX_IMAGES]

    def summary(self) -> str:
        """The text the model reads."""
        parts = []
        if self.stdout:
            parts.append(f"[stdout]\n{_cut(self.stdout, MAX_STREAM)}")
        if self.stderr:
            parts.append(f"[stderr]\n{_cut(self.stderr, MAX_STREAM)}")
        for output in self.outputs:
            data = output.get("data") or {}
            kinds = [m for m in data if m != "text/plain"]
            plain = str(data.get("text/plain", ""))
            if plain and not DEFAULT_REPR.match(plain) and not any(m in data for m in IMAGE_MIMES):
                parts.append(f"[display]\n{_cut(plain, MAX_REPR)}")
            elif "text/html" in data:
                parts.append(f"[display: text/html]\n{_cut(str(data['text/html']), MAX_REPR)}")
            elif kinds:
                parts.append(f"[display: {', '.join(kinds)}]")
        if self.result is not None:
            parts.append(f"[result]\n{_cut(self.result, MAX_REPR)}")
        if self.error is not None:
            trace = "\n".join(self.traceback)
            parts.append(f"[error] {self.error}" + (f"\n{trace}" if trace else ""))
        return "\n".join(parts) if parts else "Ran without output."


class PythonNamespace(Protocol):
    """The ``"python"`` service: a live IPython namespace."""

    async def run(self, code: str, timeout: float) -> RunOutcome: ...

    async def variables(self, names: list[str] | None) -> str: ...


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-limit // 2 :]


# -- what runs on the kernel's main thread ---------------------------------------------------------------


def execute_in_shell(shell: Any, code: str) -> RunOutcome:
    """Run ``code`` with ``shell.run_cell`` in the user's namespace, capturing everything it shows.

    stdout/stderr and ``display()`` outputs are captured with IPython's ``capture_output``; the value of
    the last expression goes to a recording display hook instead of the cell (``display_trap.hook`` is
    pointed at it for the run, so run_cell keeps it in place); errors are kept instead of shown, because
    ipykernel's shell publishes tracebacks straight to the frontend (``_showtraceback`` is shadowed).
    """
    from IPython.utils.capture import capture_output

    tracebacks: list[list[str]] = []

    def keep_traceback(_etype: Any, _evalue: Any, stb: list[str]) -> None:
        tracebacks.append(list(stb))

    hook = _ResultHook(shell)
    saved_hook = shell.display_trap.hook
    shell._showtraceback = keep_traceback
    try:
        with capture_output(stdout=True, stderr=True, display=True) as captured:
            sys.displayhook = shell.display_trap.hook = hook
            result = shell.run_cell(code, store_history=False, silent=False)
    finally:
        shell.display_trap.hook = saved_hook
        del shell._showtraceback
    outcome = RunOutcome(stdout=captured.stdout, stderr=captured.stderr)
    for output in captured.outputs:
        outcome.outputs.append({"data": dict(output.data or {}), "metadata": dict(output.metadata or {})})
    if hook.data is not None:
        outcome.result = str(hook.data.get("text/plain", ""))
        if any(m in hook.data for m in IMAGE_MIMES):
            outcome.outputs.append({"data": hook.data, "metadata": {}})
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        outcome.error = f"{type(error).__name__}: {error}".rstrip(": ")
        outcome.interrupted = isinstance(error, KeyboardInterrupt)
        lines = [ANSI.sub("", line) for stb in tracebacks for line in "\n".join(stb).splitlines()]
        outcome.traceback = lines[-TRACEBACK_LINES:]
    return outcome


class _ResultHook:
    """A display hook that records the last expression's formatted value instead of publishing it."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.data: dict[str, Any] | None = None

    def __call__(self, value: Any = None) -> None:
        if value is None:
            return
        self.data, _ = self.shell.display_formatter.format(value)


# -- the tools --------------------------------------------------------------------------------------------


@tool(
    "python_run",
    "Run Python code in the user's live IPython namespace (their notebook's kernel): variables you define "
    "stay for the user, and theirs are yours to use. Returns stdout, stderr, the value of the last "
    "expression, errors with a trimmed traceback, and images (plots). The user sees the code and its output.",
    object_schema(
        ["code"],
        code={"type": "string", "description": "Python source (IPython syntax such as %magics works too)"},
        timeout={
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "description": f"Seconds before the run is interrupted (default {DEFAULT_TIMEOUT:g})",
        },
    ),
    timeout=None,  # the namespace service interrupts the kernel at the run's own limit
    timeout_argument="timeout",
    permission=("kernels", "execute"),
)
async def python_run(ctx: ToolContext, code: str, timeout: float | None = None) -> ToolResult:
    outcome: RunOutcome = await ctx.service("python").run(code, timeout or DEFAULT_TIMEOUT)
    images = outcome.images()
    data: dict[str, Any] = {"code": code, "images": len(images), "interrupted": outcome.interrupted}
    # the agent runs in this kernel: only the user can restart it
    text, installed = with_install_note(
        outcome.summary(), code, f"{outcome.stdout}\n{outcome.stderr}", outcome.ok, restart_tool=False
    )
    if installed is not None:
        data["installed"] = installed
    return ToolResult(text, ok=outcome.ok, data=data, images=images)


@tool(
    "python_variables",
    "List variables of the user's live namespace with their type and a short summary (a table's shape, "
    "dtypes and first rows; an array's shape and dtype; lengths and trimmed values) — never whole contents.",
    object_schema(
        names={
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Only these variables (default: every user variable)",
        },
    ),
    timeout=30,
    permission=("kernels", "execute"),
)
async def python_variables(ctx: ToolContext, names: list[str] | None = None) -> ToolResult:
    text = await ctx.service("python").variables(names)
    return ToolResult(text, data={"names": names})


PYTHON_TOOLS = [python_run, python_variables]
__all__ = ["PYTHON_TOOLS", "RunOutcome", "execute_in_shell"]
