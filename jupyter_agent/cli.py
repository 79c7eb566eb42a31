"""``jupyter agent``: the agent in a terminal, on notebook files, with no server running.

    jupyter agent run "GOAL" --notebook PATH [--model M] [--plan] [--yes]
    jupyter agent sessions [ID]
    jupyter agent kernelspec install [--user | --sys-prefix | --prefix DIR]
    jupyter agent model list | prepare [NAME]
    jupyter agent audit verify | show [--db PATH]

``run`` uses the same engine and tools as the server, configured from the same Jupyter config files: the
notebook is edited through a private shared document and written back after each edit, and its cells run
in a kernel started for it. Progress streams to the terminal. Tools that ask before they run are asked
about on the terminal, allowed by ``--yes``, and refused at once (the model reads how to allow them) when
there is no terminal to ask on. With ``--plan``
the plan is printed and asked about the same way (``--yes`` runs it at once; with no terminal it does not
run). The exit code is 1 when the turn ends in an error or is cancelled, 130 when interrupted, 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_agent.terminal import TerminalPrinter, short_args


def _parser() -> argparse.ArgumentParser:
    from jupyter_agent import __version__

    parser = argparse.ArgumentParser(prog="jupyter agent", description="The Jupyter agent in a terminal.")
    parser.add_argument("--version", action="version", version=f"jupyter-agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="work on a notebook file towards a goal, headless")
    run.add_argument("goal", help="what the agent should do, in plain language")
    run.add_argument("--notebook", "-n", required=True, help="the notebook to work on (created if missing)")
    run.add_argument("--model", "-m", help="litellm model string (default: the configured model)")
    run.add_argument("--plan", action="store_true", help="plan the work first and ask before running it")
    run.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="don't ask: run the plan at once, allow tools that would ask first (shell_run, ...)",
    )
    run.add_argument("--root", help="workspace root for file tools (default: the current directory)")

    sessions = commands.add_parser("sessions", help="list stored sessions, or print one conversation")
    sessions.add_argument("id", nargs="?", help="a session id (or a unique prefix of one)")
    sessions.add_argument("--json", action="store_true", help="print JSON")

    model = commands.add_parser("model", help="the embedded offline model: list the models, prepare one")
    model_commands = model.add_subparsers(dest="model_command", metavar="ACTION")
    model_commands.add_parser("list", help="the embedded models, whether each is installed and prepared")
    prepare = model_commands.add_parser(
        "prepare", help="join an installed model's weights into its GGUF file now (checked by SHA-256)"
    )
    prepare.add_argument("name", nargs="?", help="the model (default: the configured local_model)")

    audit = commands.add_parser(
        "audit", help="the audit log: check its hash chain, or show its latest entries"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    verify = audit_commands.add_parser(
        "verify", help="check the hash chain: exit 0 when intact, 1 naming the first entry that is not"
    )
    show = audit_commands.add_parser("show", help="print the latest entries, newest first")
    show.add_argument("--limit", "-n", type=int, default=20, help="how many entries (default: 20)")
    show.add_argument("--json", action="store_true", help="print JSON")
    for command in (verify, show):
        command.add_argument("--db", help="the agent's database (default: the configured db_path)")

    kernelspec = commands.add_parser("kernelspec", help="manage the agent kernel")
    kernel_commands = kernelspec.add_subparsers(dest="kernel_command", metavar="ACTION")
    install = kernel_commands.add_parser("install", help='install the "Python 3 (agent)" kernel')
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user only")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment")
    where.add_argument("--prefix", help="into this prefix (e.g. /usr/local)")
    install.add_argument("--name", default="agent", help="kernelspec name (default: agent)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            code = asyncio.run(run_goal(args))
        except KeyboardInterrupt:
            print("\nCancelled.", file=sys.stderr)
            code = 130
    elif args.command == "sessions":
        code = show_sessions(args)
    elif args.command == "kernelspec" and args.kernel_command == "install":
        code = install_kernel(args)
    elif args.command == "audit" and args.audit_command in ("verify", "show"):
        code = verify_audit(args.db) if args.audit_command == "verify" else show_audit(args)
    elif args.command == "model" and args.model_command in ("list", "prepare"):
        code = list_models() if args.model_command == "list" else prepare_model(args.name)
    else:
        parser.print_help()
        code = 2
    sys.exit(code)


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


async def run_goal(args: argparse.Namespace) -> int:
    from jupyter_agent.runtime import NO_MODEL, load_agent_config

    config = load_agent_config()
    overrides = {"model": args.model} if args.model else {}
    root, path = _locate(args.notebook, args.root)

    from jupyter_agent.collaboration.documents import FileProvider
    from jupyter_agent.collaboration.execution import CellRunner
    from jupyter_agent.collaboration.notebooks import NotebookEditor
    from jupyter_agent.kernels_local import LocalKernels
    from jupyter_agent.runtime import build_runtime

    editor = NotebookEditor(FileProvider(root))
    agent = build_runtime(root, {"notebooks": editor}, overrides=overrides, config=config, role="cli")
    if not agent.model:  # nothing configured and no embedded model installed
        print(f"error: {agent.llm.no_model_hint or NO_MODEL}", file=sys.stderr)
        await agent.close()
        return 1
    if not (root / path).exists():
        _new_notebook(root / path)
        print(f"Created {path}", file=sys.stderr)
    kernels = LocalKernels(root)
    agent.services["cells"] = CellRunner(editor, kernels, agent.settings.cell_timeout)
    if args.yes:
        agent.allow_tools_that_ask()
    can_ask = sys.stdin.isatty()
    if not can_ask:
        agent.router.unattended = "--yes"  # a call that would ask is refused at once, naming the option
    session = agent.sessions.create(args.goal.strip().splitlines()[0][:60], owner=agent.user)
    printer = TerminalPrinter(session, can_ask=can_ask)
    final: dict[str, Any] = {"type": "error", "message": "the turn did not finish"}
    try:
        final = await agent.run(
            session,
            args.goal,
            context={"notebook": path},
            model=args.model,
            on_event=printer.handle,
            plan=args.plan,
            auto=args.yes,
        )
    finally:
        await printer.close()
        await kernels.close()
        await agent.close()
    if final["type"] == "error" or final.get("reason") == "cancelled":
        return 1
    print(f"Saved {path} (session {session.id[:8]})", file=sys.stderr)
    return 0


# -- sessions ----------------------------------------------------------------------------------------------


def show_sessions(args: argparse.Namespace) -> int:
    from jupyter_agent.runtime import data_path, load_agent_config, open_store

    config = load_agent_config()
    path = data_path(str(config.get("db_path") or ""), "agent.db")
    if not path.exists():
        print(f"No sessions yet (no store at {path}).")
        return 0
    store = open_store(config)
    try:
        sessions = store.list_sessions()
        if args.id is None:
            if args.json:
                print(json.dumps(sessions, indent=1))
            elif not sessions:
                print("No sessions yet.")
            else:
                print(f"{'ID':<32}  {'UPDATED':<16}  {'LAST_SEQ':>8}  TITLE")
                for s in sessions:
                    updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["updated"]))
                    print(f"{s['id']:<32}  {updated:<16}  {s['last_seq']:>8}  {s['title']}")
            return 0
        matches = [s for s in sessions if s["id"].startswith(args.id)]
        if len(matches) != 1:
            print(
                f"error: {'no' if not matches else 'more than one'} session matches {args.id!r}",
                file=sys.stderr,
            )
            return 1
        events = store.events(matches[0]["id"])
        if args.json:
            print(json.dumps({"session": matches[0], "events": events}, indent=1))
        else:
            print(f"# {matches[0]['title'] or '(untitled)'}  ({matches[0]['id']})")
            for line in conversation_lines(events):
                print(line)
        return 0
    finally:
        store.close()


# -- audit ------------------------------------------------------------------------------------------------


def _audit_store(db: str | None) -> Any:
    """The store holding the audit log (``db``, else the configured one), or None when there is none."""
    from jupyter_agent.runtime import data_path, load_agent_config
    from jupyter_agent.store import Store

    path = Path(db) if db else data_path(str(load_agent_config().get("db_path") or ""), "agent.db")
    if not path.is_file():
        print(f"error: there is no agent database at {path}", file=sys.stderr)
        return None
    return Store(path, role="cli")


def verify_audit(db: str | None) -> int:
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


def show_audit(args: argparse.Namespace) -> int:
    store = _audit_store(args.db)
    if store is None:
        return 2
    try:
        entries = store.audit_log(max(args.limit, 1))
    finally:
        store.close()
    if args.json:
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


def _configured_local_model() -> str:
    from jupyter_agent.runtime import configured_local_model, load_agent_config

    return configured_local_model(load_agent_config())


def list_models() -> int:
    from jupyter_agent.composition import models_dir
    from jupyter_agent.local_model.registry import MODELS
    from jupyter_agent.local_model.weights import install_hint, missing_parts

    configured = _configured_local_model()
    print(f"{'MODEL':<20}  {'INSTALLED':<9}  {'PREPARED':<8}  TITLE")
    for name, spec in MODELS.items():
        installed = "yes" if not missing_parts(spec) else "no"
        prepared = "yes" if (models_dir() / spec.filename).is_file() else "no"
        mark = " (configured)" if name == configured else ""
        print(f"{name:<20}  {installed:<9}  {prepared:<8}  {spec.title}{mark}")
        if installed == "no":
            print(f"{'':<20}  install: {install_hint(spec)}")
    return 0


def prepare_model(name: str | None) -> int:
    """Join the model's weights into its GGUF file where the server looks for it (e.g. in an image build)."""
    from jupyter_agent.composition import models_dir
    from jupyter_agent.local_model.registry import get_spec
    from jupyter_agent.local_model.weights import WeightsError, assemble

    name = name or _configured_local_model()
    try:
        path = assemble(get_spec(name), models_dir())
    except (WeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB; its SHA-256 was checked when joined)")
    return 0


# -- kernelspec ----------------------------------------------------------------------------------------------


def install_kernel(args: argparse.Namespace) -> int:
    from jupyter_agent.kernel import install_kernel_spec

    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        where = install_kernel_spec(user=args.user, prefix=prefix, name=args.name)
    except OSError as err:
        print(f"error: could not install the kernelspec: {err} (try --user or --sys-prefix)", file=sys.stderr)
        return 1
    print(f'Installed the "Python 3 (agent)" kernel ({args.name}) in {where}')
    return 0


if __name__ == "__main__":
    main()
