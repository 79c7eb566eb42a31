"""File tools: read, write, patch and list files inside the workspace root."""

from __future__ import annotations

from jupyter_agent.tools.base import ToolContext, ToolResult, object_schema, tool

PATH = {"type": "string", "description": "Path relative to the workspace root"}


@tool(
    "file_read",
    "Read a text file, optionally a range of lines (offset is the first line, 1-based; limit the line count).",
    object_schema(
        ["path"],
        path=PATH,
        offset={"type": ["integer", "null"], "minimum": 1},
        limit={"type": ["integer", "null"], "minimum": 0},
    ),
    timeout=30,
    permission=("contents", "read"),
)
async def file_read(
    ctx: ToolContext, path: str, offset: int | None = None, limit: int | None = None
) -> ToolResult:
    got = await ctx.service("workspace").read(path, offset, limit)
    head = f"{got['path']}: lines {got['first_line']}-{got['last_line']} of {got['total_lines']}"
    return ToolResult(f"{head}\n{got['content']}", data={k: v for k, v in got.items() if k != "content"})


@tool(
    "file_write",
    "Create or replace a text file with the given content (a backup of the old content is kept).",
    object_schema(["path", "content"], path=PATH, content={"type": "string"}),
    timeout=30,
    permission=("contents", "write"),
)
async def file_write(ctx: ToolContext, path: str, content: str) -> ToolResult:
    done = ctx.changed(await ctx.service("workspace").write(path, content, ctx.session_id))
    how = "through the open editor" if done["live"] else "on disk"
    return ToolResult(f"Wrote {done['bytes']} bytes to {done['path']} ({how}).", data=done)


@tool(
    "file_patch",
    "Replace one exact, unique excerpt of a text file (old) with new text (a backup is kept).",
    object_schema(
        ["path", "old", "new"],
        path=PATH,
        old={"type": "string", "description": "Exact text to replace; must occur exactly once"},
        new={"type": "string", "description": "Replacement text"},
    ),
    timeout=30,
    permission=("contents", "write"),
)
async def file_patch(ctx: ToolContext, path: str, old: str, new: str) -> ToolResult:
    done = ctx.changed(await ctx.service("workspace").patch(path, old, new, ctx.session_id))
    return ToolResult(f"Patched {done['path']} at line {done['line']}.", data=done)


@tool(
    "file_list",
    "List a directory (non-recursive), or the files matching a glob pattern such as '**/*.py'.",
    object_schema(
        path={"type": "string", "default": "."},
        pattern={"type": ["string", "null"], "description": "Glob pattern, e.g. '*.csv' or '**/*.py'"},
    ),
    timeout=30,
    permission=("contents", "read"),
)
async def file_list(ctx: ToolContext, path: str = ".", pattern: str | None = None) -> ToolResult:
    got = await ctx.service("workspace").list(path, pattern)
    lines = [
        f"{e['path']}{'/' if e['type'] == 'directory' else ''}  {e['size'] if e['size'] is not None else ''}".rstrip()
        for e in got["entries"]
    ]
    if got["cut"] == "entries":
        lines.append(f"[list cut at {got['limit']} entries: more match; narrow it with a path or a pattern]")
    elif got["cut"] == "scanned":
        lines.append(
            f"[listing stopped after looking at {got['scanned']} entries: there may be more matches; "
            "narrow it with a path or a pattern]"
        )
    data = {"path": got["path"], "count": len(got["entries"]), "cut": got["cut"], "limit": got["limit"]}
    return ToolResult("\n".join(lines) or "(empty)", data=data)


FILE_TOOLS = [file_read, file_write, file_patch, file_list]
