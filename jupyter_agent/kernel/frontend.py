"""Run agent turns from an IPython kernel: the front end behind ``%%agent`` and the agent kernel.

The engine runs on its own thread (:mod:`jupyter_agent.kernel.threads`); the main thread drives each turn.
A cell that starts with ``%%agent`` or ``%agent`` is rewritten by an input transformer into a top-level
``await`` (:meth:`KernelFrontend.run_async`), so ipykernel runs it as an async cell and its loop keeps
serving widget messages (the Stop, approval and plan buttons work). Elsewhere (``%agent`` inside other
code, ``%autoawait off``, terminal IPython) the magic blocks in :meth:`KernelFrontend.run_sync`, still
serving the channel from the engine. Where nobody can answer (the execute request does not allow stdin, as
from nbclient, nbconvert and papermill) no buttons are shown, a plan that needs approval does not run, and a
tool call that would ask is refused at once: its result, which the model reads, names ``%%agent --yes``.

Interrupts: while a turn runs the front end owns SIGINT. Between runs of code it notes the interrupt and
the driver cancels the turn, which ends with ``done`` (reason ``cancelled``) and the cell with
``TurnCancelled``; while the agent's code runs, KeyboardInterrupt is raised inside that code, as in any
cell, and the turn is cancelled too. (ipykernel's own handler for async cells schedules the cancel without
waking its loop; an exception raised in the middle of our output capture would leave the shell broken.)
The Stop button cancels the turn and the cell ends normally.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from jupyter_agent.kernel.threads import Channel, EngineThread, MainThreadPython

log = logging.getLogger(__name__)

TERMINAL = ("done", "error")
UNATTENDED_OPTION = "%%agent --yes"  # allows, where nobody can answer, the calls that would ask

#: The longest the main thread waits before looking again. ipykernel's SIGINT handler for async cells
#: schedules the cancel with ``call_soon`` (no wake-up), so the kernel's loop must wake by itself to act on
#: an interrupt; a blocked wait also runs signal handlers late when a signal lands on another thread.
WAKE_INTERVAL = 0.2

KERNEL_PROMPT = """You are Jupyter Agent, working inside the user's running IPython kernel (a Jupyter \
notebook or console). python_run runs code in the user's live namespace: variables you create stay there, \
and theirs are yours to use. Look at their variables with python_variables before guessing what they hold. \
The user sees every piece of code you run and its output under their cell, so keep each piece small and \
purposeful, and never print whole large objects. Paths are relative to the kernel's working directory. \
Answer concisely in Markdown once the task is done."""


@dataclass
class Request:
    """One ``%%agent`` cell: the text and its options."""

    text: str
    model: str | None = None
    session: str | None = None
    no_run: bool = False
    plan: bool = False
    cells: bool = False
    yes: bool = False  # don't ask: run the plan unapproved, allow the tools that would ask
    cell_id: str | None = None  # the notebook cell that asked (from the frontend's execute request)
    attended: bool = True  # a person can answer questions under the cell (from the execute request)


@dataclass
class TurnHandle:
    """The main thread's hold on a turn running on the engine thread."""

    channel: Channel
    engine: EngineThread
    future: concurrent.futures.Future[Any] | None = None
    session: Any = None  # set on the engine thread once the turn is submitted
    cancel_requested: bool = False
    interrupted: bool = False  # the person interrupted the kernel (not the Stop button)

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.future is not None:
            self.future.cancel()  # cancels the engine-side task, which cancels the turn

    def approve(self, call_id: str, decision: str) -> None:
        if self.session is not None:
            self.engine.call(self.session.approve, call_id, decision)

    def decide_plan(self, approve: bool, edits: dict[str, Any] | None) -> None:
        """The person's answer to a plan awaiting approval: run it (after their edits), or cancel the turn."""
        if not approve:
            self.cancel()
            return
        session, channel = self.session, self.channel
        if session is None:
            return

        def apply() -> None:
            from jupyter_agent.errors import AgentError

            try:
                if edits is not None:
                    session.plan_edit(edits)
                session.plan_approve()
            except AgentError as err:
                channel.put("plan_refused", err.message)

        self.engine.call(apply)


class TurnCancelled(Exception):
    """An interrupt cancelled the turn; the cell ends in error, as any interrupted cell does."""

    def _render_traceback_(self) -> list[str]:
        return ["KeyboardInterrupt: the agent's turn was cancelled"]


class KernelFrontend:
    """Per-shell state of the agent: default options, the engine (built at first use), the sessions."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.defaults: dict[str, Any] = {"model": None, "session": None}
        self.overrides: dict[str, Any] = {}  # JupyterAgent traits set with %agent_config
        self.python = MainThreadPython(shell)
        self.engine = EngineThread.get()
        self._agent: Any = None
        self._stale = False
        self._built_for: str | None = None  # the configured model the engine was built for
        self._default_session: str | None = None
        self._server_sessions: dict[str, str] = {}  # --cells: server session per (server, session name)

    # -- configuration ------------------------------------------------------------------------------
    def configure(self, **values: Any) -> None:
        for key, value in values.items():
            if key in self.defaults:
                self.defaults[key] = value or None
            else:
                if value in (None, ""):
                    self.overrides.pop(key, None)
                else:
                    self.overrides[key] = value
                self._stale = True

    def effective_model(self, request: Request | None = None) -> str:
        from jupyter_agent.runtime import configured_model, load_agent_config

        chosen = (request.model if request else None) or self.defaults["model"]
        return chosen or configured_model(load_agent_config(), self.overrides)

    def describe(self) -> dict[str, Any]:
        from jupyter_agent.runtime import configured_local_model, data_path, load_agent_config

        config = load_agent_config()
        embedded = configured_local_model(config, self.overrides)
        return {
            "model": self.effective_model()
            or f"(none configured: the embedded {embedded} model, when installed)",
            "session": self.defaults["session"] or "(this kernel's own)",
            "overrides": dict(self.overrides),
            "store": str(
                data_path(str(self.overrides.get("db_path") or config.get("db_path") or ""), "agent.db")
            ),
            "workdir": os.getcwd(),
        }

    # -- running a turn (main thread) ---------------------------------------------------------------
    def run_sync(self, request: Request) -> None:
        """Drive a turn from a cell that runs synchronously (blocks the kernel until the turn ends)."""
        begun = self._begin(request, Channel(), interactive=False)
        if begun is None:
            return
        view, handle = begun
        try:
            with self.python.handling_sigint():
                while True:
                    try:
                        item = handle.channel.get(_poll_timeout(view))
                    except KeyboardInterrupt:  # one that came before our handler was in place
                        self.python.interrupt_requested = True
                        item = None
                    if self._interrupted(handle, view) or self._serve(item, handle, view):
                        break
        finally:
            self._end(view, handle)

    async def run_async(self, request: Request) -> None:
        """Drive a turn from an async cell: the kernel keeps serving widgets (Stop, approvals) meanwhile."""
        begun = self._begin(request, Channel(asyncio.get_running_loop()), interactive=True)
        if begun is None:
            return
        view, handle = begun
        try:
            with self.python.handling_sigint():
                while True:
                    try:
                        item = await handle.channel.aget(_poll_timeout(view))
                    except asyncio.CancelledError:  # the cell was cancelled some other way: same as SIGINT
                        task = asyncio.current_task()
                        if task is not None:
                            task.uncancel()  # handled: the cell goes on until the turn has ended
                        self.python.interrupt_requested = True
                        item = None
                    if self._interrupted(handle, view) or self._serve(item, handle, view):
                        break
        finally:
            self._end(view, handle)

    def _begin(self, request: Request, channel: Channel, interactive: bool) -> tuple[Any, TurnHandle] | None:
        """The view under the cell (its buttons act on the turn) and the started turn, or None."""
        from jupyter_agent.kernel.view import make_view

        holder: list[TurnHandle] = []

        def on(action: str) -> Any:
            return lambda *args: getattr(holder[0], action)(*args) if holder else None

        request.attended = _person_can_answer(self.shell)
        view = make_view(
            self.shell,
            interactive=interactive and request.attended,  # no buttons where nobody would press them
            on_stop=on("cancel") if interactive else None,
            on_approve=on("approve"),
            on_plan=on("decide_plan"),
        )
        handle = self._start(request, channel, view)
        if handle is None:
            return None
        holder.append(handle)
        return view, handle

    def _end(self, view: Any, handle: TurnHandle) -> None:
        self.python.channel = None
        view.close()
        if handle.interrupted:
            raise TurnCancelled()

    def _interrupted(self, handle: TurnHandle, view: Any) -> bool:
        """Act on an interrupt noted by the SIGINT handler; True to stop waiting (a second interrupt)."""
        if not self.python.interrupt_requested:
            return False
        self.python.interrupt_requested = False
        if handle.interrupted and handle.cancel_requested:
            view.note("Stopped waiting for the agent.")
            return True
        handle.interrupted = True
        handle.cancel()
        return False

    def _start(self, request: Request, channel: Channel, view: Any) -> TurnHandle | None:
        if not request.text.strip():
            view.error("Nothing to do: write a request after %agent, or below %%agent.")
            return None
        handle = TurnHandle(channel, self.engine)
        if request.cells:
            from jupyter_agent.kernel.server_link import send_to_server

            request.cell_id = _asking_cell_id(self.shell)
            handle.future = self.engine.submit(send_to_server(request, channel, self._server_sessions))
            return handle
        self.python.channel = channel
        handle.future = self.engine.submit(self._serve_turn(request, handle))
        view.start()
        return handle

    def _serve(self, item: tuple[Any, ...] | None, handle: TurnHandle, view: Any) -> bool:
        """Handle one channel item on the main thread; True when the turn is over."""
        if item is None:
            view.flush()
            return False
        kind = item[0]
        if kind == "event":
            view.handle(item[1])
        elif kind == "note":
            view.note(item[1])
        elif kind == "plan_refused":
            view.plan_refused(item[1])
        elif kind == "call":
            _, job, future, interrupt = item
            if handle.cancel_requested:
                future.cancel()
                return False
            if self.python.serve(job, future, interrupt):
                handle.interrupted = True  # the person interrupted the agent's code: stop the whole turn
                handle.cancel()
        elif kind == "end":
            view.finish(item[1])
            return True
        return False

    # -- the engine thread --------------------------------------------------------------------------
    async def _serve_turn(self, request: Request, handle: TurnHandle) -> None:
        from jupyter_agent.errors import AgentError

        channel = handle.channel
        final: dict[str, Any] | None = None

        def forward(event: dict[str, Any]) -> None:
            nonlocal final
            if event["type"] in TERMINAL:
                final = event
            channel.put("event", event)

        restore: dict[str, str] | None = None
        untrusted_policy: str | None = None
        try:
            agent = await self._ensure_agent()
            session = self._session(agent, request.session)
            handle.session = session
            if request.no_run or request.yes:
                restore = dict(agent.router.policy_overrides)
                untrusted_policy = agent.router.untrusted_content_policy
            if request.yes:
                agent.allow_tools_that_ask()
            if request.no_run:
                agent.router.policy_overrides["python_run"] = "deny"
            # Nobody to ask (nbclient, nbconvert, papermill): a call that would ask is refused at once.
            agent.router.unattended = None if request.attended else UNATTENDED_OPTION
            model = request.model or self.defaults["model"]
            await agent.run(
                session, request.text, model=model, on_event=forward, plan=request.plan, auto=request.yes
            )
        except asyncio.CancelledError:
            final = final or {"type": "done", "reason": "cancelled"}
        except AgentError as err:
            final = final or {"type": "error", "code": err.code, "message": err.message}
        except Exception as err:
            log.exception("jupyter-agent turn failed")
            final = final or {
                "type": "error",
                "code": "internal_error",
                "message": f"{type(err).__name__}: {err}",
            }
        finally:
            if restore is not None and self._agent is not None:
                self._agent.router.policy_overrides.clear()
                self._agent.router.policy_overrides.update(restore)
                self._agent.router.untrusted_content_policy = untrusted_policy or "ask"
            channel.put("end", final or {"type": "done", "reason": "completed"})

    async def _ensure_agent(self) -> Any:
        from jupyter_agent.browser import BrowserOnFirstUse
        from jupyter_agent.composition import browser_config
        from jupyter_agent.runtime import build_runtime, configured_model, load_agent_config
        from jupyter_agent.tools.browser import BROWSER_TOOLS
        from jupyter_agent.tools.files import FILE_TOOLS
        from jupyter_agent.tools.notebook import notebook_variables
        from jupyter_agent.tools.python import PYTHON_TOOLS
        from jupyter_agent.tools.shell import SHELL_TOOLS

        # The configured model may change under a built engine (a config file, JUPYTER_AGENT_MODEL set in
        # the kernel): then the engine is built again. Conversations live in the store and carry on.
        config = load_agent_config()
        model = configured_model(config, self.overrides)
        if self._agent is not None and (self._stale or model != self._built_for):
            old, self._agent = self._agent, None
            await old.close()
        if self._agent is None:
            started = time.perf_counter()
            self._agent = build_runtime(
                os.getcwd(),
                {"python": self.python, "variables": self.python},
                tools=[*PYTHON_TOOLS, notebook_variables, *FILE_TOOLS, *SHELL_TOOLS, *BROWSER_TOOLS],
                overrides=dict(self.overrides),
                config=config,
                system_prompt=KERNEL_PROMPT,
            )
            self._built_for = model
            # Chromium starts at the first browser call, then stays warm for this kernel.
            self._agent.services["browser"] = BrowserOnFirstUse(browser_config(self._agent.settings))
            self._stale = False
            log.debug("jupyter-agent engine built in %.0f ms", (time.perf_counter() - started) * 1000)
        return self._agent

    def review_turn(self, action: str, turn: str | None, name: str | None) -> str:
        """``%agent undo [TURN]`` / ``%agent redo [TURN]`` on this kernel's session (or the named one): the
        turn's changes to files and notebooks taken back or applied again, as the chat's Undo does."""
        from jupyter_agent.collaboration.review import describe

        async def act() -> str:
            agent = await self._ensure_agent()
            session = self._session(agent, name)
            user = {"username": agent.user, "display_name": ""}
            done = await (session.undo(turn, user) if action == "undo" else session.redo(turn, user))
            return describe(done)

        return self.engine.submit(act()).result()

    def _session(self, agent: Any, name: str | None) -> Any:
        name = name or self.defaults["session"]
        if name:
            return agent.named_session(name)
        from jupyter_agent.errors import NotFound

        if self._default_session is not None:
            try:
                return agent.sessions.get(self._default_session)
            except NotFound:  # a new store (db_path changed): a new conversation
                pass
        session = agent.sessions.create("", owner=agent.user)
        self._default_session = session.id
        return session


def _asking_cell_id(shell: Any) -> str | None:
    """The id of the notebook cell being executed, as JupyterLab sends it in the request's metadata."""
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent("shell") if kernel is not None else {}
    except Exception:  # an old ipykernel without get_parent(channel)
        parent = getattr(kernel, "_parent_header", {}) or {}
    cell_id = (parent.get("metadata") or {}).get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


def _person_can_answer(shell: Any) -> bool:
    """Whether a person can answer a question (an approval) under the cell being run.

    The frontends people use (JupyterLab, Notebook, VS Code, consoles) let the kernel ask on stdin; those that
    run notebooks unattended (nbclient, hence nbconvert and papermill) send ``allow_stdin`` false, and no one
    would press a button there either. Terminal IPython (no kernel): whether stdin is a terminal.
    """
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return bool(sys.stdin) and sys.stdin.isatty()
    return bool(getattr(kernel, "_allow_stdin", False))  # ipykernel records it per execute request


def _poll_timeout(view: Any) -> float:
    flush_in = view.next_flush_in()
    return WAKE_INTERVAL if flush_in is None else min(flush_in, WAKE_INTERVAL)


_frontends: dict[int, KernelFrontend] = {}


def frontend_for(shell: Any) -> KernelFrontend:
    """The front end of this shell (one per shell, created at first use)."""
    found = _frontends.get(id(shell))
    if found is None:
        found = _frontends[id(shell)] = KernelFrontend(shell)
    return found
