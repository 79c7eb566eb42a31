"""Mentions in a chat prompt (``@variable``, ``@cell``) resolved to their summaries when it is sent.

The chat puts the person's mentions in the prompt's context, for the context's notebook:
``{"notebook": "a.ipynb", "attachments": [{"kind": "variable", "name": "df"}, {"kind": "cell", "id": "..."}]}``.
Each gets its summary now, with that person's rights (a variable needs ``kernels:execute``, as the request
runs in the kernel; a cell ``contents:read``), and the summaries stay in the message's context: the model
reads them (see :func:`jupyter_agent.composition.describe_prompt`) and everyone's chat shows what was
attached. A variable that cannot be summarised (kernel busy or not running) is attached with the reason.
"""

from __future__ import annotations

from typing import Any

from jupyter_agent.collaboration.notebooks import NotebookEditor
from jupyter_agent.collaboration.variables import NO_KERNEL, KernelVariables
from jupyter_agent.errors import AgentError, BadRequest, Forbidden, NotFound
from jupyter_agent.server.authorization import PersonAuthorization, Principal
from jupyter_agent.tools.base import Permission
from jupyter_agent.tools.namespace import describe

MAX_ATTACHMENTS = 20
MAX_CELL_CHARS = 4_000
KINDS = {"variable": ("name", ("kernels", "execute")), "cell": ("id", ("contents", "read"))}


class PromptAttachments:
    """Resolves a prompt context's ``attachments`` for the person who sends it."""

    def __init__(
        self, variables: KernelVariables, notebooks: NotebookEditor, authorization: PersonAuthorization
    ) -> None:
        self.variables = variables
        self.notebooks = notebooks
        self.authorization = authorization

    async def resolve(self, context: Any, principal: Principal | None) -> Any:
        """``context`` with each attachment's ``label`` and ``summary`` filled in (unchanged without any)."""
        if not isinstance(context, dict) or not context.get("attachments"):
            return context
        wanted = _parse(context)
        path = context["notebook"]
        for kind in {a["kind"] for a in wanted}:
            await self._check(principal, KINDS[kind][1], kind)
        names = [a["name"] for a in wanted if a["kind"] == "variable"]
        variables = await self._variables(path, names) if names else {}
        cells = await self._cells(path) if any(a["kind"] == "cell" for a in wanted) else {}
        resolved = []
        for item in wanted:
            if item["kind"] == "variable":
                label, summary = f"@{item['name']}", variables[item["name"]]
            else:
                found = cells.get(item["id"])
                if found is None:
                    raise NotFound(f"no cell with id {item['id']!r} in {path}: it may have been deleted")
                label, summary = found
            resolved.append({**item, "label": label, "summary": summary})
        return {**context, "attachments": resolved}

    async def _check(self, principal: Principal | None, permission: Permission, kind: str) -> None:
        if not await self.authorization(principal, permission):
            who = principal.username if principal is not None else "this user"
            raise Forbidden(
                f"{who} may not attach a {kind}: it needs {permission[0]}:{permission[1]}, which {who} lacks"
            )

    async def _variables(self, path: str, names: list[str]) -> dict[str, str]:
        try:
            listing = await self.variables.listing(path, names)
        except AgentError as err:  # busy, or not a Python kernel: the model hears why
            return {name: f"{name}: not available ({err.message})" for name in names}
        if listing["kernel"] == "none":
            return {name: f"{name}: not available. {NO_KERNEL}" for name in names}
        found = {s["name"]: describe(s) for s in listing["variables"]}
        return {name: found.get(name, f"{name}: not defined in the notebook's kernel") for name in names}

    async def _cells(self, path: str) -> dict[str, tuple[str, str]]:
        """Each cell's label and text (source, execution count and outputs as text), by id."""
        content = await self.notebooks.read(path)
        out = {}
        for cell in content["cells"]:
            head = f"cell {cell['index'] + 1} of {path} (id={cell['id']}, {cell['cell_type']}"
            if cell["cell_type"] == "code":
                head += f", execution_count={cell['execution_count']}"
            source = cell["source"]
            if len(source) > MAX_CELL_CHARS:
                source = source[:MAX_CELL_CHARS] + "\n[... source cut ...]"
            lines = [head + ")", source, *(f"[output] {o}" for o in cell.get("outputs", []))]
            out[str(cell["id"])] = (f"@cell-{cell['index'] + 1}", "\n".join(lines))
        return out


def _parse(context: dict[str, Any]) -> list[dict[str, str]]:
    attachments, path = context.get("attachments"), context.get("notebook")
    if not isinstance(path, str) or not path:
        raise BadRequest("attachments are of a notebook: send the notebook's path as context.notebook")
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise BadRequest(f"context.attachments must be a list of at most {MAX_ATTACHMENTS} mentions")
    wanted: list[dict[str, str]] = []
    for item in attachments:
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in KINDS:
            raise BadRequest(
                'each attachment is {"kind": "variable", "name": ...} or {"kind": "cell", "id": ...}'
            )
        key = KINDS[kind][0]
        value = item.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= 200:
            raise BadRequest(f"a {kind} attachment needs its {key} (a string of at most 200 characters)")
        if {"kind": kind, key: value} not in wanted:
            wanted.append({"kind": kind, key: value})
    return wanted
