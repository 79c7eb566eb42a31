"""IPython magics: ``%%agent`` / ``%agent`` ask the agent, ``%agent_config`` shows and sets its defaults.

A thin front over the engine: options are parsed here and the turn runs through
:mod:`jupyter_agent.kernel.frontend` (which explains how the async engine runs inside a kernel). Loading the
extension imports nothing heavy; the engine and litellm are imported at the first request.

Usage::

    %load_ext jupyter_agent
    %%agent [--model M] [--session NAME] [--no-run] [--plan] [--yes] [--cells]
    plot the distribution of df.price and tell me what stands out

    %agent what does df contain?
    %agent_config                       # show the model, session and settings in effect
    %agent_config model=openai/gpt-4o session=analysis max_steps=10
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

FLAGS = {"--plan": "plan", "--no-run": "no_run", "--cells": "cells", "--yes": "yes", "-y": "yes"}
VALUED = {"--model": "model", "--session": "session"}
USAGE = """Usage: %%agent [--model M] [--session NAME] [--no-run] [--plan] [--yes] [--cells]  (request below)
       %agent [options] <request on one line>

  --model M        use this litellm model for this request (default: %agent_config model, then the config)
  --session NAME   continue the named conversation (default: this kernel's own conversation)
  --no-run         the agent may look at variables but not run code
  --plan           plan the work first: the plan is shown to approve or edit, then its tasks run
  --yes, -y        don't ask: run the plan without approval, allow tools that would ask (shell_run)
  --cells          the agent writes its code as new notebook cells below (through the Jupyter server)
"""

_CELL_MAGIC = re.compile(r"^%%agent(?:\s|$)")
_LINE_MAGIC = re.compile(r"^%agent(?:\s|$)")


class OptionError(ValueError):
    pass


def parse_request(line: str, cell: str | None) -> Any:
    """The request of a magic: leading ``--options`` on the magic's line, the text after them (or the cell)."""
    from jupyter_agent.kernel.frontend import Request

    request = Request(text="")
    rest = line.strip()
    while rest.startswith("-"):
        token, _, after = rest.partition(" ")
        after = after.lstrip()
        if token in ("-h", "--help"):
            raise OptionError(USAGE)
        if token in FLAGS:
            setattr(request, FLAGS[token], True)
        elif token in VALUED:
            value, _, after = after.partition(" ")
            if not value:
                raise OptionError(f"{token} needs a value\n\n{USAGE}")
            setattr(request, VALUED[token], value)
            after = after.lstrip()
        elif token == "--":
            rest = after
            break
        else:
            raise OptionError(f"unknown option {token}\n\n{USAGE}")
        rest = after
    request.text = (cell if cell is not None else rest).strip()
    if cell is not None and rest:
        raise OptionError(f"unexpected text on the %%agent line: {rest!r} (write the request below it)")
    return request


def _frontend(shell: Any) -> Any:
    from jupyter_agent.kernel.frontend import frontend_for

    return frontend_for(shell)


async def run_cell_async(line: str, cell: str | None) -> None:
    """What a ``%%agent`` / ``%agent`` cell becomes in a kernel: the turn, awaited on the kernel's loop."""
    from IPython import get_ipython

    shell = get_ipython()
    try:
        request = parse_request(line, cell)
    except OptionError as err:
        print(err, file=sys.stderr)
        return
    await _frontend(shell).run_async(request)


def agent_cell_transformer(lines: list[str]) -> list[str]:
    """Rewrite a cell that is an ``%%agent`` cell (or one ``%agent`` line) into a top-level ``await``.

    ipykernel then runs it as an async cell: the kernel's event loop keeps serving widget messages while
    the turn runs, and an interrupt cancels it cleanly. Other cells are left alone; a ``%agent`` inside
    other code runs the blocking way.
    """
    if not lines or not _can_await():
        return lines
    first = lines[0].rstrip("\n")
    if _CELL_MAGIC.match(first):
        line, cell = first[len("%%agent") :], "".join(lines[1:])
    elif _LINE_MAGIC.match(first) and not "".join(lines[1:]).strip():
        line, cell = first[len("%agent") :], None
    else:
        return lines
    call = f"run_cell_async({line!r}, {cell!r})"
    return [f"await __import__('jupyter_agent.magics', fromlist=['run_cell_async']).{call}\n"]


def _can_await() -> bool:
    from IPython import get_ipython
    from IPython.core.async_helpers import _asyncio_runner

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False  # terminal IPython: the blocking way handles Ctrl-C best there
    return bool(shell.autoawait and shell.loop_runner is _asyncio_runner)


@magics_class
class AgentMagics(Magics):
    @line_cell_magic
    def agent(self, line: str, cell: str | None = None) -> None:
        """Ask the agent; it works in this kernel's namespace (python_run, python_variables).

        Usage: %%agent [--model M] [--session NAME] [--no-run] [--plan] [--yes] [--cells], request below;
        or %agent [options] <request>. Interrupt the kernel (or press Stop) to cancel the turn.
        """
        try:
            request = parse_request(line, cell)
        except OptionError as err:
            print(err, file=sys.stderr)
            return
        _frontend(self.shell).run_sync(request)

    @line_magic
    def agent_config(self, line: str) -> None:
        """Show the agent's settings, or set defaults: %agent_config model=M session=NAME max_steps=10 ...

        ``model`` and ``session`` apply to the next requests; any other ``JupyterAgent`` setting (e.g.
        ``max_steps``, ``tool_policy``) rebuilds the engine at the next request. ``key=`` resets a value.
        """
        front = _frontend(self.shell)
        line = line.strip()
        if line in ("reset", "--reset"):
            front.configure(model=None, session=None, **dict.fromkeys(front.overrides))
            line = ""
        if line:
            try:
                front.configure(**_assignments(line))
            except ValueError as err:
                print(err, file=sys.stderr)
                return
        for key, value in front.describe().items():
            print(f"{key:>9}: {value}")


def _assignments(line: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in line.split():
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(
                f"expected key=value, got {item!r} (e.g. %agent_config model=openai/gpt-4o-mini)"
            )
        try:
            values[key] = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            values[key] = raw
    return values


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(AgentMagics)
    transforms = shell.input_transformers_cleanup
    if agent_cell_transformer not in transforms:
        transforms.append(agent_cell_transformer)


def unload_ipython_extension(shell: Any) -> None:
    transforms = shell.input_transformers_cleanup
    if agent_cell_transformer in transforms:
        transforms.remove(agent_cell_transformer)
