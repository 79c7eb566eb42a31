"""The variables of a notebook's running kernel, summarised in the kernel without a trace in the notebook.

The request is silent (no execution count, no history, no outputs published for JupyterLab to show) and
carries the summariser as a ``user_expressions`` entry, whose value comes back in the reply of that request
only; the notebook's cells and the user's namespace are untouched. It waits for the cell the agent may be
running (the kernel's lock) and gives up after a time limit: a kernel busy with a person's long cell is
reported busy, not interrupted. A notebook without a running kernel has no variables: none is started.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from typing import Any, Protocol

from jupyter_agent.collaboration.execution import KernelHandle
from jupyter_agent.errors import Conflict, ToolError
from jupyter_agent.tools.namespace import describe_listing, kernel_expression

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds: the summariser itself stops describing after 3
NO_KERNEL = "The notebook's kernel is not running, so it holds no variables yet (running a cell starts it)."


class RunningKernels(Protocol):
    async def running(self, path: str) -> KernelHandle | None:
        """The notebook's kernel if one runs (none is started)."""
        ...


class KernelVariables:
    """The ``"variables"`` tool service: the user variables of a notebook's running kernel."""

    def __init__(self, kernels: RunningKernels, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.kernels = kernels
        self.timeout = timeout

    async def listing(self, path: str, names: list[str] | None = None) -> dict[str, Any]:
        """``{"path", "kernel": "running" | "none", "variables", "more", "missing"}`` (see
        :func:`jupyter_agent.tools.namespace.list_variables`); ToolError when the kernel is busy or fails."""
        kernel = await self.kernels.running(path)
        if kernel is None:
            return {"path": path, "kernel": "none", "variables": [], "more": 0, "missing": list(names or [])}
        try:
            async with asyncio.timeout(self.timeout):
                async with kernel.lock:  # after the agent's running cell: one request at a time per client
                    reply = await kernel.client.execute_interactive(
                        "",
                        silent=True,
                        store_history=False,
                        user_expressions={"variables": kernel_expression(names)},
                        allow_stdin=False,
                        output_hook=_ignore,  # the default hook prints outputs to the server's stdout
                    )
        except TimeoutError:
            raise Conflict(
                f"the kernel of {path} is busy (a cell has run for over {self.timeout:g} s); "
                "ask again when it is idle",
                code="kernel_busy",
            ) from None
        return {"path": path, "kernel": "running", **_parse(path, reply)}

    async def describe(self, path: str | None, names: list[str] | None = None) -> str:
        """The listing as the model reads it."""
        if not path:
            raise ToolError("name the notebook (path) whose kernel's variables to list")
        listing = await self.listing(path, names)
        if listing["kernel"] == "none":
            return NO_KERNEL
        return describe_listing(listing)


def _parse(path: str, reply: dict[str, Any]) -> dict[str, Any]:
    content = reply.get("content") or {}
    if content.get("status") != "ok":
        raise ToolError(f"the kernel of {path} could not run the request: {content.get('evalue') or content}")
    answer = (content.get("user_expressions") or {}).get("variables") or {}
    if answer.get("status") != "ok":
        # Not an IPython kernel (R, Julia...), or the summariser failed there: say which.
        raise Conflict(
            f"could not list the variables of {path}'s kernel ({answer.get('ename')}: {answer.get('evalue')}); "
            "variables are listed for Python (IPython) kernels",
            code="kernel_unsupported",
        )
    text = (answer.get("data") or {}).get("text/plain", "")
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError) as err:
        log.warning("Unreadable variables listing from the kernel of %s: %.200r", path, text)
        raise ToolError(f"the kernel of {path} answered with an unreadable listing: {err}") from None


def _ignore(_msg: dict[str, Any]) -> None:
    return None
