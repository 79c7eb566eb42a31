"""Run a notebook cell in the notebook's own kernel and stream its outputs into the shared cell.

The kernel is the one JupyterLab shows for the notebook (found through the server's session manager, started
when there is none), so variables the user defined are there. Outputs are written into the live cell as they
arrive, the way JupyterLab writes them, so everyone watching sees them stream; this works with no browser
open. A timeout interrupts the kernel and stops every further write to the cell.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycrdt import Array, Map, Text

from jupyter_agent.collaboration.documents import agent_transaction
from jupyter_agent.collaboration.notebooks import (
    NotebookEditor,
    cell_change,
    cell_state,
    find_cell,
    notebook_kernel_name,
    rich_text,
)
from jupyter_agent.errors import BadRequest, NotFound, ToolError

log = logging.getLogger(__name__)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}


class KernelHandle(Protocol):
    """A kernel to execute in: a started client plus the means to interrupt and watch it."""

    kernel_id: str
    client: Any  # jupyter_client AsyncKernelClient with channels started
    lock: asyncio.Lock  # one execution at a time per client
    note: str | None  # something to tell the person at the next run (e.g. the kernel was restarted)
    died: bool

    async def interrupt(self) -> None: ...
    async def is_alive(self) -> bool: ...


class KernelProvider(Protocol):
    async def kernel_for(self, path: str, kernel_name: str | None) -> KernelHandle: ...

    async def restart(self, path: str, kernel_name: str | None) -> KernelHandle:
        """Restart the notebook's kernel (started when there is none), its handle reconnected."""
        ...


@dataclass
class ExecutionResult:
    cell_id: str
    status: str  # ok | error | timeout | kernel_died
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. the kernel was restarted before this run
    code: str = ""  # the cell's source as it ran
    change: dict[str, Any] | None = None  # the outputs it replaced and wrote, for the turn's review and undo

    def stream_text(self) -> str:
        """Everything the run printed (stdout and stderr)."""
        return "".join(str(o.get("text", "")) for o in self.outputs if o.get("output_type") == "stream")

    def summary(self, max_chars: int = 8000) -> str:
        """The text the model reads: text outputs, the error with a trimmed traceback, a note per image."""
        parts: list[str] = []
        for out in self.outputs:
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(str(out.get("text", "")))
            elif kind == "error":
                trace = [ANSI.sub("", line) for line in out.get("traceback") or []]
                tail = "\n".join(trace[-12:])
                parts.append(f"{out.get('ename')}: {out.get('evalue')}\n{tail}".rstrip())
            else:
                data = out.get("data") or {}
                parts.append(rich_text(data))
                parts.extend(f"[{mime} output]" for mime in data if mime.startswith("image/"))
        text = "\n".join(p.rstrip("\n") for p in parts if p)
        if len(text) > max_chars:
            text = text[: max_chars // 2] + "\n[... output cut ...]\n" + text[-max_chars // 2 :]
        head = {
            "ok": f"Cell {self.cell_id} ran (execution count {self.execution_count}).",
            "error": f"Cell {self.cell_id} raised an error.",
            "timeout": f"Cell {self.cell_id} timed out: the kernel was interrupted.",
            "kernel_died": f"The kernel died while cell {self.cell_id} ran; the server restarts it.",
        }[self.status]
        head = "\n".join([*self.notes, head])
        return f"{head}\nOutput:\n{text}" if text else f"{head} No output."


def message_to_output(msg: dict[str, Any]) -> dict[str, Any] | None:
    """An iopub message as an nbformat output dict (None for messages that are not outputs)."""
    kind = msg["header"]["msg_type"]
    content = msg["content"]
    if kind not in OUTPUT_TYPES:
        return None
    if kind == "stream":
        return {
            "output_type": "stream",
            "name": content.get("name", "stdout"),
            "text": content.get("text", ""),
        }
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback", [])),
        }
    out: dict[str, Any] = {
        "output_type": kind,
        "data": content.get("data", {}),
        "metadata": content.get("metadata", {}),
    }
    if kind == "execute_result":
        out["execution_count"] = content.get("execution_count")
    return out


class CellOutputWriter:
    """Writes one execution's outputs into a shared cell; closed writers ignore late messages."""

    def __init__(self, ycell: Map, nb: Any) -> None:
        self.ycell = ycell
        self.nb = nb
        self.outputs: list[dict[str, Any]] = []
        self.closed = False
        self._clear_pending = False

    def begin(self) -> None:
        self.closed = False
        self.outputs.clear()
        with agent_transaction(self.nb):
            self.ycell["outputs"].clear()
            self.ycell["execution_count"] = None
            self.ycell["execution_state"] = "running"

    def on_message(self, msg: dict[str, Any]) -> None:
        if self.closed:
            return
        if msg["header"]["msg_type"] == "clear_output":
            if msg["content"].get("wait"):
                self._clear_pending = True
            else:
                self._clear()
            return
        out = message_to_output(msg)
        if out is None:
            return
        if self._clear_pending:
            self._clear()
        youts: Array = self.ycell["outputs"]
        with agent_transaction(self.nb):
            last = self.outputs[-1] if self.outputs else None
            if (
                out["output_type"] == "stream"
                and last is not None
                and last["output_type"] == "stream"
                and last["name"] == out["name"]
                and len(youts) == len(self.outputs)
            ):
                last["text"] += out["text"]
                ytext = youts[len(youts) - 1]["text"]
                if isinstance(ytext, Text):
                    ytext += out["text"]
                else:
                    youts[len(youts) - 1]["text"] = last["text"]
                return
            self.outputs.append(dict(out))
            if out["output_type"] == "stream":
                out = {**out, "text": Text(out["text"])}
            youts.append(Map(out))

    def _clear(self) -> None:
        self._clear_pending = False
        self.outputs.clear()
        with agent_transaction(self.nb):
            self.ycell["outputs"].clear()

    def finish(self, execution_count: int | None) -> None:
        self.closed = True
        with agent_transaction(self.nb):
            if execution_count is not None:
                self.ycell["execution_count"] = execution_count
            self.ycell["execution_state"] = "idle"


class CellRunner:
    """Executes cells of live notebooks in their kernels."""

    def __init__(
        self, editor: NotebookEditor, kernels: KernelProvider, default_timeout: float = 300.0
    ) -> None:
        self.editor = editor
        self.kernels = kernels
        self.default_timeout = default_timeout

    async def run_cell(self, path: str, cell_id: str, timeout: float | None = None) -> ExecutionResult:
        nb = await self.editor.documents.notebook(path)
        index = find_cell(nb, cell_id)
        ycell, before = nb.ycells[index], cell_state(nb, index)
        if ycell.get("cell_type") != "code":
            raise BadRequest(f"cell {cell_id} is a {ycell.get('cell_type')} cell; only code cells run")
        kernel = await self.kernels.kernel_for(path, notebook_kernel_name(nb))
        limit = timeout or self.default_timeout
        writer = CellOutputWriter(ycell, nb)
        code = str(ycell["source"])
        notes = [kernel.note] if kernel.note else []
        if notes:
            kernel.note = None
        async with kernel.lock:
            status, count = await self._execute(kernel, code, writer, limit, cell_id)
            if status == "aborted":  # the kernel was still aborting after an earlier error: run it again
                status, count = await self._execute(kernel, code, writer, limit, cell_id)
            await self.editor.documents.saved(path)
        if any(o["output_type"] == "error" for o in writer.outputs) and status == "ok":
            status = "error"
        try:
            change = cell_change("outputs", path, cell_id, before, cell_state(nb, find_cell(nb, cell_id)))
        except NotFound:  # deleted while it ran: nothing of the run is left to review or undo
            change = None
        return ExecutionResult(cell_id, status, count, writer.outputs, notes, code, change)

    async def restart_kernel(self, path: str) -> dict[str, Any]:
        """Restart the kernel of notebook ``path`` (the one JupyterLab shows): its variables are lost and
        packages installed since it started become importable. Waits for a cell that is running to end."""
        nb = await self.editor.documents.notebook(path)
        kernel = await self.kernels.restart(path, notebook_kernel_name(nb))
        return {"path": path, "kernel_id": kernel.kernel_id}

    async def _execute(
        self, kernel: KernelHandle, code: str, writer: CellOutputWriter, limit: float, cell_id: str
    ) -> tuple[str, int | None]:
        writer.begin()
        execution = asyncio.ensure_future(
            kernel.client.execute_interactive(
                code, output_hook=writer.on_message, allow_stdin=False, timeout=None
            )
        )
        watchdog = asyncio.ensure_future(_wait_until_dead(kernel))
        status, count = "ok", None
        try:
            done, _ = await asyncio.wait(
                {execution, watchdog}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
            if execution in done:
                content = execution.result()["content"]
                count = content.get("execution_count")
                status = {"error": "error", "aborted": "aborted"}.get(content.get("status"), "ok")
            elif watchdog in done:
                status = "kernel_died"
                kernel.died = True  # the next run reconnects to the restarted kernel and says so
            else:
                status = "timeout"
                await self._stop(kernel, writer, execution)
        except asyncio.CancelledError:
            await self._stop(kernel, writer, execution)
            raise
        except Exception as err:
            raise ToolError(f"running cell {cell_id} failed: {err}") from err
        finally:
            watchdog.cancel()
            execution.cancel()
            writer.finish(count)
        return status, count

    @staticmethod
    async def _stop(kernel: KernelHandle, writer: CellOutputWriter, execution: asyncio.Future) -> None:
        """Interrupt the kernel, write nothing more to the cell, and let the interrupted request finish so
        its late messages do not reach the next execution."""
        writer.closed = True
        await _interrupt(kernel)
        await asyncio.wait({execution}, timeout=5)


async def _wait_until_dead(kernel: KernelHandle, interval: float = 0.5) -> None:
    """Returns when the kernel process is gone (polled: the restarter's callbacks fire seconds late)."""
    while await kernel.is_alive():
        await asyncio.sleep(interval)


async def _interrupt(kernel: KernelHandle) -> None:
    try:
        await kernel.interrupt()
    except Exception:
        log.warning("Could not interrupt kernel %s", kernel.kernel_id, exc_info=True)
