"""shell_run: a shell command in the workspace root, with a time limit. Asks before it runs by default."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from jupyter_agent.tools.base import ToolContext, ToolResult, object_schema, tool
from jupyter_agent.tools.installs import with_install_note

MAX_OUTPUT = 12_000


@tool(
    "shell_run",
    "Run a shell command (bash) in the workspace root and return its exit code and output.",
    object_schema(
        ["command"],
        command={"type": "string"},
        timeout={"type": "number", "exclusiveMinimum": 0, "maximum": 3600, "default": 60},
    ),
    policy="ask",
    timeout_argument="timeout",
    permission=("terminals", "execute"),
)
async def shell_run(ctx: ToolContext, command: str, timeout: float = 60) -> ToolResult:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=ctx.root_dir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as err:
        _kill_group(proc)
        await proc.wait()
        if isinstance(err, asyncio.CancelledError):
            raise
        return ToolResult.error(f"the command ran longer than {timeout:g} s and was killed", exit_code=None)
    text = output.decode("utf-8", errors="replace")
    if len(text) > MAX_OUTPUT:
        text = text[: MAX_OUTPUT // 2] + "\n[... output cut ...]\n" + text[-MAX_OUTPUT // 2 :]
    code = proc.returncode
    data: dict[str, Any] = {"exit_code": code}
    result, installed = with_install_note(
        f"exit code {code}\n{text}".rstrip(),
        command,
        text,
        code == 0,
        shell=True,
        restart_tool="cells" in ctx.services,
    )
    if installed is not None:
        data["installed"] = installed
    return ToolResult(result, ok=code == 0, data=data)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


SHELL_TOOLS = [shell_run]
