"""IPython magics: ``%%agent`` / ``%agent`` ask the agent, ``%agent_config`` shows and sets its defaults.

A thin front over the engine: options are parsed here and the turn runs through
:mod:`jupyter_agent.kernel.frontend` (which explains how the async engine runs inside a kernel). Loading the
extension returns at once: litellm and the engine are imported in background threads meanwhile, so the first
request finds them loaded.

Usage::

    %load_ext jupyter_agent
    %%agent [--model M] [--session NAME] [--no-run] [--plan] [--yes] [--cells]
    plot the distribution of df.price and tell me what stands out

    %agent what does df contain?
    %agent_config                       # show the model, session and settings in effect
    %agent_config model=openai/gpt-4o session=analysis max_steps=10
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.utils.process import arg_split

_CELL_MAGIC = re.compile(r"^%%agent(?:\s|$)")
_LINE_MAGIC = re.compile(r"^%agent(?:\s|$)")


class OptionError(ValueError):
    pass


def parse_request(line: str, cell: str | None) -> Any:
    """The request of a magic: leading ``--options`` on the magic's line, the text after them (or the cell)."""
    from jupyter_agent.kernel.frontend import Request

    parser = AgentMagics.agent.parser
    usage = "Usage: " + parser.format_usage().lstrip(":").strip()
    try:
        options, unknown = parse_argstring(AgentMagics.agent, line, partial=True)
    except UsageError as err:  # an option without its value
        raise OptionError(f"{err}\n{usage}") from None
    if options.help:
        raise OptionError(parser.format_help())
    if unknown:
        raise OptionError(f"unknown option {unknown[0]}\n{usage}")
    rest = _request_text(line, options.request)
    if cell is not None and rest:
        raise OptionError(f"unexpected text on the %%agent line: {rest!r} (write the request below it)")
    fields = ("model", "session", "no_run", "plan", "yes", "cells")
    return Request(
        text=(cell if cell is not None else rest).strip(), **{f: getattr(options, f) for f in fields}
    )


def _request_text(line: str, request: list[str]) -> str:
    """The request on the magic's line as written: from its first word on (the parser splits it into words)."""
    words = arg_split(line, strict=False)  # as parse_argstring splits: each word a verbatim piece of the line
    options = len(words) - len(request) + (request[:1] == ["--"])  # "--" ends the options
    end = 0
    for word in words[:options]:
        end = line.index(word, end) + len(word)
    return line[end:].strip()


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
    if not _review_request(shell, request):
        await _frontend(shell).run_async(request)


def _review_request(shell: Any, request: Any) -> bool:
    """``%agent undo [TURN]`` and ``%agent redo [TURN]``: done here (no model involved); False for a prompt."""
    words = request.text.split()
    if not 1 <= len(words) <= 2 or words[0] not in ("undo", "redo"):
        return False
    from jupyter_agent.errors import AgentError

    try:
        print(_frontend(shell).review_turn(words[0], words[1] if len(words) == 2 else None, request.session))
    except AgentError as err:
        print(f"error: {err.message}", file=sys.stderr)
    return True


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
    # argparse formats help texts with %: "%%" shows one.
    @magic_arguments()
    @argument(
        "--model", metavar="M", help="this litellm model for this request (default: %%agent_config model)"
    )
    @argument(
        "--session", metavar="NAME", help="continue this named conversation (default: the kernel's own)"
    )
    @argument("--no-run", action="store_true", help="the agent may look at variables but not run code")
    @argument("--plan", action="store_true", help="plan first: approve or edit the plan, then its tasks run")
    @argument(
        "--yes",
        "-y",
        action="store_true",
        help="don't ask: run the plan unapproved, allow tools that would ask",
    )
    @argument(
        "--cells", action="store_true", help="write the code as notebook cells below (through the server)"
    )
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument(
        "request", nargs=argparse.REMAINDER, help="on the line for %%agent; in the cell below for %%%%agent"
    )
    @line_cell_magic
    def agent(self, line: str, cell: str | None = None) -> None:
        """Ask the agent; it works in this kernel's namespace (python_run, python_variables).

        %%agent [options] with the request in the cell below it, or %agent [options] <request> on one line.
        Interrupt the kernel (or press Stop) to cancel the turn. %agent undo [TURN] takes back the changes the
        session's latest (or that) turn made to files and notebooks, keeping others' edits; %agent redo
        applies them again.
        """
        try:
            request = parse_request(line, cell)
        except OptionError as err:
            print(err, file=sys.stderr)
            return
        if not _review_request(self.shell, request):
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


#: What the first request needs, imported in the background as the extension loads (litellm the longest).
WARM_UP = (
    "jupyter_agent.kernel.frontend",
    "jupyter_agent.runtime",
    "jupyter_agent.composition",
    "jupyter_agent.engine.loop",
    "jupyter_agent.engine.session",
    "jupyter_agent.tools",
    "jupyter_agent.store",
    "jsonschema",
)


def warm_up() -> None:
    """Start importing litellm and the engine in daemon threads; the kernel goes on at once."""
    import importlib
    import threading

    from jupyter_agent.engine.llm import preload_litellm

    preload_litellm()

    def load() -> None:
        for name in WARM_UP:
            importlib.import_module(name)

    threading.Thread(target=load, name="jupyter-agent-warm-up", daemon=True).start()


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(AgentMagics)
    warm_up()
    transforms = shell.input_transformers_cleanup
    if agent_cell_transformer not in transforms:
        transforms.append(agent_cell_transformer)


def unload_ipython_extension(shell: Any) -> None:
    transforms = shell.input_transformers_cleanup
    if agent_cell_transformer in transforms:
        transforms.remove(agent_cell_transformer)
