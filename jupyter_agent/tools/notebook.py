"""Notebook tools: read and edit cells of the live shared notebook, and run them in its kernel."""

from __future__ import annotations

import ast
from typing import Any

from jupyter_agent.errors import AgentError
from jupyter_agent.tools.base import ImagePart, ToolContext, ToolResult, object_schema, tool
from jupyter_agent.tools.installs import with_install_note
from jupyter_agent.tools.namespace import describe

MAX_IMAGES = 4

PATH = {
    "type": "string",
    "description": "Notebook path relative to the workspace root, e.g. 'analysis.ipynb'",
}
CELL_ID = {"type": "string", "description": "The cell's id, as notebook_read shows it"}


READ_BUDGET = 14_000  # characters per notebook_read: under the engine's cut of a tool's text (16,000)


@tool(
    "notebook_read",
    "Read a notebook: every cell with its id, type, source, execution count and a short form of its outputs. "
    "A long notebook is read in parts: the result says which start to read the next part from.",
    object_schema(
        ["path"],
        path=PATH,
        start={
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "First cell index to show (default 0)",
        },
    ),
    timeout=30,
    permission=("contents", "read"),
)
async def notebook_read(ctx: ToolContext, path: str, start: int | None = None) -> ToolResult:
    content = await ctx.service("notebooks").read(path)
    cells = content["cells"]
    start = min(max(start or 0, 0), len(cells))
    lines = [f"Notebook {content['path']} (kernel: {content['kernel'] or 'default'}), {len(cells)} cells:"]
    size = len(lines[0])
    end = start
    for cell in cells[start:]:
        head = f"--- cell {cell['index']} id={cell['id']} type={cell['cell_type']}"
        if cell["cell_type"] == "code":
            head += f" execution_count={cell['execution_count']}"
        part = [head, cell["source"], *(f"[output] {out}" for out in cell.get("outputs", []))]
        part_size = sum(len(line) + 1 for line in part)
        if end > start and size + part_size > READ_BUDGET:
            break
        lines.extend(part)
        size += part_size
        end += 1
    if end < len(cells):
        lines.append(
            f"[shown: cells {start} to {end - 1} of {len(cells)}; "
            f"call notebook_read with start={end} for the next cells]"
        )
    data = {"path": content["path"], "cells": len(cells), "start": start, "end": end}
    return ToolResult("\n".join(lines), data=data)


@tool(
    "notebook_insert_cell",
    "Insert a new cell into a notebook (at the end unless index is given). Returns the new cell's id.",
    object_schema(
        ["path", "source"],
        path=PATH,
        source={"type": "string", "description": "The cell's source"},
        cell_type={"type": "string", "enum": ["code", "markdown", "raw"], "default": "code"},
        index={"type": ["integer", "null"], "description": "Position (0 = first); omit to append"},
    ),
    timeout=30,
    permission=("contents", "write"),
)
async def notebook_insert_cell(
    ctx: ToolContext, path: str, source: str, cell_type: str = "code", index: int | None = None
) -> ToolResult:
    done = ctx.changed(
        await ctx.service("notebooks").insert_cell(path, source, cell_type, index, ctx.pending)
    )
    return ToolResult(
        f"Inserted {cell_type} cell {done['cell_id']} at index {done['index']} of {done['path']}"
        + (" (pending a person's review)." if ctx.pending else "."),
        data=done,
    )


@tool(
    "notebook_edit_cell",
    "Replace the source of one cell, found by id. Only the changed text is touched.",
    object_schema(
        ["path", "cell_id", "source"],
        path=PATH,
        cell_id=CELL_ID,
        source={"type": "string", "description": "The cell's new source"},
    ),
    timeout=30,
    permission=("contents", "write"),
)
async def notebook_edit_cell(ctx: ToolContext, path: str, cell_id: str, source: str) -> ToolResult:
    done = ctx.changed(await ctx.service("notebooks").edit_cell(path, cell_id, source, ctx.pending))
    review = " (pending a person's review)" if ctx.pending else ""
    return ToolResult(f"Updated cell {cell_id} of {done['path']}{review}.", data=done)


@tool(
    "notebook_delete_cell",
    "Delete one cell, found by id.",
    object_schema(["path", "cell_id"], path=PATH, cell_id=CELL_ID),
    timeout=30,
    permission=("contents", "write"),
)
async def notebook_delete_cell(ctx: ToolContext, path: str, cell_id: str) -> ToolResult:
    done = ctx.changed(await ctx.service("notebooks").delete_cell(path, cell_id, ctx.pending))
    if done["pending"]:
        return ToolResult(
            f"Marked cell {cell_id} of {done['path']} for deletion: it goes when a person accepts it.",
            data=done,
        )
    return ToolResult(f"Deleted cell {cell_id} of {done['path']}.", data=done)


@tool(
    "notebook_run_cell",
    "Run one code cell in the notebook's kernel (the one JupyterLab shows) and return its outputs.",
    object_schema(
        ["path", "cell_id"],
        path=PATH,
        cell_id=CELL_ID,
        timeout={
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "description": "Seconds before the kernel is interrupted (default: server setting)",
        },
    ),
    timeout=None,  # the runner enforces the cell's own time limit and interrupts the kernel
    permission=("kernels", "execute"),
)
async def notebook_run_cell(
    ctx: ToolContext, path: str, cell_id: str, timeout: float | None = None
) -> ToolResult:
    return await _run(ctx, path, cell_id, timeout)


@tool(
    "notebook_run_code",
    "Run code in a new cell at the end of a notebook and return its outputs. One step for what "
    "notebook_insert_cell and notebook_run_cell do; the cell stays in the notebook, with its id.",
    object_schema(
        ["path", "source"],
        path=PATH,
        source={"type": "string", "description": "The code to run"},
        timeout={
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "description": "Seconds before the kernel is interrupted (default: server setting)",
        },
    ),
    timeout=None,  # the runner enforces the cell's own time limit and interrupts the kernel
    permission=("kernels", "execute"),  # running code; it also writes the cell
)
async def notebook_run_code(
    ctx: ToolContext, path: str, source: str, timeout: float | None = None
) -> ToolResult:
    if not path.endswith(".ipynb"):  # small models pass the data file they mean to read
        return ToolResult.error(
            f"path is the notebook the code runs in (a .ipynb file, such as the active notebook), not "
            f"{path!r}; open a data file in the code itself, e.g. pandas.read_csv({path!r})"
        )
    done = ctx.changed(await ctx.service("notebooks").insert_cell(path, source, "code", None, ctx.pending))
    if ctx.pending:  # a person reviews the agent's cells before they run
        return ToolResult(
            f"Inserted code cell {done['cell_id']} of {done['path']}, pending a person's review: it runs "
            "once accepted.",
            data=done,
        )
    result = await _run(ctx, path, done["cell_id"], timeout)
    text = result.text  # it names the new cell ("Cell <id> ran ...")
    if not result.ok:
        text += await _variables_set(ctx, path, source)
    return ToolResult(text, result.ok, result.data, result.images)


async def _variables_set(ctx: ToolContext, path: str, source: str) -> str:
    """What the variables a failed piece of code assigns hold now: a model fixes code from facts (a table's
    real columns, a value's type) rather than guesses. '' when there are none, or they cannot be read."""
    names = assigned_names(source)
    if not names or "variables" not in ctx.services:
        return ""
    try:
        listing = await ctx.service("variables").listing(path, names)
    except AgentError:  # the kernel is busy or is not Python: the error alone must do
        return ""
    # Names, types, sizes and columns, without rows: short enough to survive a small model's cut.
    shown = [describe({k: v for k, v in s.items() if k != "preview"}) for s in listing["variables"]]
    if not shown:
        return ""
    return "\n\nThe variables this code assigned before it failed:\n" + "\n".join(shown)


def assigned_names(source: str) -> list[str]:
    """The names a piece of code assigns at its top level, in order (none when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: dict[str, None] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    names[leaf.id] = None
    return list(names)


async def _run(ctx: ToolContext, path: str, cell_id: str, timeout: float | None) -> ToolResult:
    """Run one cell and read its outputs: what notebook_run_cell and notebook_run_code return."""
    result = await ctx.service("cells").run_cell(path, cell_id, timeout)
    if result.change is not None:
        ctx.record(result.change)
    images = [
        ImagePart(mime, str(payload).replace("\n", ""), f"output of cell {cell_id}")
        for out in result.outputs
        for mime, payload in (out.get("data") or {}).items()
        if mime in ("image/png", "image/jpeg")
    ]
    data: dict[str, Any] = {
        "path": path,
        "cell_id": cell_id,
        "status": result.status,
        "execution_count": result.execution_count,
        "images": len(images),
    }
    ok = result.status == "ok"
    text, installed = with_install_note(
        result.summary(), result.code, result.stream_text(), ok, restart_tool=True
    )
    if installed is not None:
        data["installed"] = installed
    return ToolResult(text, ok=ok, data=data, images=images[:MAX_IMAGES])


@tool(
    "notebook_variables",
    "List the user variables of a notebook's running kernel: each one's type and size, a table's shape, "
    "column dtypes and first rows, an array's shape and dtype, lengths and short values — never whole "
    "contents. Nothing is written to the notebook. Look here before guessing what a variable holds.",
    object_schema(
        path={
            "type": ["string", "null"],
            "description": "Notebook path relative to the workspace root (omit when the agent runs in the "
            "kernel itself)",
        },
        names={
            "type": ["array", "null"],
            "items": {"type": "string"},
            "maxItems": 100,
            "description": "Only these variables (default: every user variable)",
        },
    ),
    timeout=30,
    permission=("kernels", "execute"),  # it runs a (silent) request in the kernel
)
async def notebook_variables(
    ctx: ToolContext, path: str | None = None, names: list[str] | None = None
) -> ToolResult:
    text = await ctx.service("variables").describe(path, names)
    return ToolResult(text, data={"path": path, "names": names})


@tool(
    "notebook_restart_kernel",
    "Restart a notebook's kernel, as Kernel > Restart Kernel does: every variable and import of the kernel "
    "is lost, and packages installed since it started become importable. Asks the user first.",
    object_schema(["path"], path=PATH),
    policy="ask",  # the user's variables are lost
    timeout=120,
    permission=("kernels", "execute"),
)
async def notebook_restart_kernel(ctx: ToolContext, path: str) -> ToolResult:
    done = await ctx.service("cells").restart_kernel(path)
    return ToolResult(
        f"Restarted the kernel of {done['path']}: its variables and imports are gone, so run the cells that "
        "define what you need again.",
        data=done,
    )


NOTEBOOK_TOOLS = [
    notebook_read,
    notebook_insert_cell,
    notebook_edit_cell,
    notebook_delete_cell,
    notebook_run_cell,
    notebook_run_code,
    notebook_variables,
    notebook_restart_kernel,
]
__all__ = ["NOTEBOOK_TOOLS"]
