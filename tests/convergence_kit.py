"""Convergence under faults: seeded scenarios where people and the agent edit one notebook while things break.

A scenario is a function of its seed. ``random.Random(seed)`` picks 2-4 people (independent pycrdt clients over
real WebSockets, as JupyterLab is) and a sequence of steps: people insert cells, type at random places, delete
text and cells, move cells (the way JupyterLab does: delete and re-insert a copy); the agent runs turns through
the scripted model (read, insert, edit, delete, run code that streams outputs); and the harness injects faults:

- ``reconnect``: a person's WebSocket drops, they keep editing offline, then reconnect (a new provider on the
  same document) and sync.
- ``sleep``: the laptop-sleep case. Everyone else closes the notebook or sleeps too, the room is freed (the
  server log says so), the sleepers edit offline, then wake up and reconnect with their stale documents.
- ``reload``: everyone leaves, the room is freed and reloaded from disk when they come back.
- ``restart``: the server is stopped (SIGTERM) and started again while an agent turn runs a cell.
- ``kernel_kill``: the kernel process is killed (SIGKILL) while an agent-run cell streams output.
- ``save_race``: a person presses save (the room's ``save`` message) while others type.
- ``external``: another program rewrites the .ipynb on disk (read, add a cell, write). jupyter-collaboration
  reloads a changed file into the room (its documented out-of-band behaviour), so the program works on a
  saved, quiet notebook: its cell counts as an edit, and every edit saved before must survive.

Moves follow JupyterLab (delete and re-insert a copy), so typing that crosses a move goes to the deleted copy:
a JupyterLab limitation, not ours. Moves are therefore made only when everyone is online and in sync.

Every edit writes a unique marker (``⟨h2:17⟩``). The ledger knows every marker made and which ones somebody
deleted (a deleted span, a deleted cell, a cell moved by someone who had not seen the marker yet). At the end
every person, a fresh client (the server's document) and the file on disk must hold the same cells, and every
marker not deleted must be there exactly once.

Scenarios run one at a time by default. ``run_seeds(parallel=N)`` runs several at once (each on its own
notebook); with jupyter-collaboration's default SQLiteYStore that makes the rooms' update writes fail with
"database is locked" (each room has its own connection to one SQLite file and the failed writes are only
logged), and rooms then reloaded from that store diverge from their clients. Set ``CONVERGENCE_SERVER_LOG`` to
a path to keep the server's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Encoder, Provider
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.clients import TornadoChannel

MARKER = re.compile(r"⟨[a-z0-9]+:\d+⟩")
FAULTS = ("reconnect", "sleep", "reload", "restart", "kernel_kill", "save_race", "external")
EXPENSIVE = ("restart", "kernel_kill")

#: Small delays so a scenario sees saves, room clean-ups and file polls within a second.
SERVER_CONFIG = {
    "YDocExtension": {
        "document_save_delay": 0.2,
        "document_cleanup_delay": 0.5,
        "file_poll_interval": 0.3,
    },
    "JupyterAgent": {
        "retry_backoff": 0.01,
        "request_timeout": 20.0,
        "chunk_timeout": 10.0,
        "cell_timeout": 30.0,
    },
}
SETTLE = 30.0  # seconds for everyone to converge at the end of a scenario

LONG_CELL = "import os, time\nprint('pid', os.getpid(), flush=True)\nfor i in range(400):\n    print('tick', i, flush=True)\n    time.sleep(0.02)\n"
SHORT_CELL = "for i in range(3):\n    print('out', i, flush=True)\n"


def byte_offset(text: str, index: int) -> int:
    """pycrdt's Text indexes UTF-8 bytes: the offset of character ``index``."""
    return len(text[:index].encode("utf-8"))


def boundaries(text: str) -> list[int]:
    """Character positions not inside a marker (where typing cannot split one)."""
    inside = set()
    for m in MARKER.finditer(text):
        inside.update(range(m.start() + 1, m.end()))
    return [i for i in range(len(text) + 1) if i not in inside]


def markers(text: str) -> list[str]:
    return MARKER.findall(text)


# --- views of the notebook: every client, the server's document, the file ---------------------------------


def normal_outputs(outputs: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for o in outputs or []:
        kind = o.get("output_type")
        if kind == "stream":
            text = o.get("text", "")
            out.append((kind, o.get("name"), "".join(text) if isinstance(text, list) else str(text)))
        elif kind == "error":
            out.append((kind, o.get("ename"), o.get("evalue")))
        else:
            data = o.get("data") or {}
            plain = data.get("text/plain", "")
            out.append((kind, "".join(plain) if isinstance(plain, list) else plain))
    return out


def doc_view(doc: YNotebook) -> list[tuple]:
    cells = []
    for ycell in doc.ycells:
        cell = ycell.to_py() or {}
        cells.append(
            (
                cell.get("id"),
                cell.get("cell_type"),
                str(cell.get("source", "")),
                tuple(normal_outputs(cell.get("outputs") or [])),
            )
        )
    return cells


def disk_view(path: Path) -> list[tuple] | None:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # saving is not atomic: a read mid-save can see a partial file
        return None
    return [
        (
            c.get("id"),
            c.get("cell_type"),
            "".join(c.get("source", "")),
            tuple(normal_outputs(c.get("outputs") or [])),
        )
        for c in nb.get("cells", [])
    ]


# --- the ledger: which edits were made and which were deleted -----------------------------------------------


@dataclass
class Ledger:
    made: dict[str, str] = field(default_factory=dict)  # marker -> id of the cell it was written in
    deleted: set[str] = field(default_factory=set)  # markers somebody deleted
    deleted_cells: set[str] = field(default_factory=set)  # cell ids somebody deleted
    moved_away: set[str] = field(
        default_factory=set
    )  # markers in a cell moved by someone who had not seen them

    def make(self, marker: str, cell_id: str) -> None:
        self.made[marker] = cell_id

    def delete(self, found: list[str]) -> None:
        self.deleted.update(found)

    def delete_cell(self, cell_id: str, seen: list[str]) -> None:
        self.deleted.update(seen)
        self.deleted_cells.add(cell_id)

    def expected(self) -> set[str]:
        return {
            m
            for m, cell in self.made.items()
            if m not in self.deleted and cell not in self.deleted_cells and m not in self.moved_away
        }


# --- the shared server and scripted model ---------------------------------------------------------------------


class Cluster:
    """One Jupyter server (a subprocess, restartable) and the scripted model, shared by many scenarios."""

    def __init__(self, ystore_class: str | None = None) -> None:
        self.ystore_class = ystore_class  # YDocExtension.ystore_class; None: jupyter-collaboration's default
        self.llm = ScriptedLLM()
        self.model = AgentModel()
        self.server: JupyterServer | None = None
        self.http = None

    def __enter__(self) -> Cluster:
        self.llm.start()
        self.llm.default = self.model
        config = SERVER_CONFIG
        if self.ystore_class:
            config = {
                **config,
                "YDocExtension": {**config["YDocExtension"], "ystore_class": self.ystore_class},
            }
        self.server = JupyterServer(llm_base_url=self.llm.base_url, config=config)
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
            if keep := os.environ.get("CONVERGENCE_SERVER_LOG"):  # where to keep the server's log
                Path(keep).write_bytes(self.server.log_path.read_bytes())
            self.server.__exit__(*exc)
        self.llm.stop()

    @property
    def root(self) -> Path:
        assert self.server is not None
        return self.server.root

    @property
    def headers(self) -> dict[str, str]:
        assert self.server is not None
        return {"Authorization": f"token {self.server.token}"}

    def url(self, path: str, scheme: str = "http") -> str:
        assert self.server is not None
        return f"{scheme}://127.0.0.1:{self.server.port}/{path}"

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        client = AsyncHTTPClient()
        response = await client.fetch(
            HTTPRequest(
                self.url(path),
                method=method,
                headers=self.headers,
                body=json.dumps(body) if body is not None else None,
                request_timeout=60,
            )
        )
        return json.loads(response.body) if response.body else None

    def log_count(self, text: str) -> int:
        assert self.server is not None
        try:
            return self.server.log_path.read_text(errors="replace").count(text)
        except OSError:
            return 0

    async def restart(self) -> None:
        assert self.server is not None
        await asyncio.to_thread(self.server.restart)


# --- people: independent collaborative clients ----------------------------------------------------------------


class QuietChannel(TornadoChannel):
    """pycrdt's Channel over a tornado WebSocket; sends on a dropped connection are lost, as on a real network
    (what was not delivered is synced again on reconnect from the state vectors)."""

    def __init__(self, conn: WebSocketClientConnection, path: str) -> None:
        super().__init__(conn, path)
        self.conn = conn
        self.closed = False

    async def __anext__(self) -> bytes:
        try:
            message = await super().__anext__()
        except StopAsyncIteration:
            self.closed = True
            raise
        return message.encode() if isinstance(message, str) else message

    async def send(self, message: bytes) -> None:
        if self.closed:
            return
        try:
            await super().send(message)
        except Exception:
            self.closed = True


class Person:
    """One person's JupyterLab: a YNotebook synced over the room WebSocket while online, edited offline too."""

    def __init__(self, name: str, cluster: Cluster, path: str, ledger: Ledger, rng: random.Random) -> None:
        self.name = name
        self.cluster = cluster
        self.path = path
        self.ledger = ledger
        self.rng = rng
        self.doc = YNotebook()
        self.count = 0
        self.session: dict[str, Any] | None = None
        self.channel: QuietChannel | None = None
        self.provider: Provider | None = None
        self.task: asyncio.Task | None = None

    @property
    def online(self) -> bool:
        return self.channel is not None and not self.channel.closed

    def marker(self) -> str:
        self.count += 1
        return f"⟨{self.name}:{self.count}⟩"

    async def connect(self) -> None:
        await self.disconnect()
        if self.session is None:
            self.session = await self.cluster.request(
                "PUT", f"api/collaboration/session/{self.path}", {"format": "json", "type": "notebook"}
            )
        room = f"json:notebook:{self.session['fileId']}"
        url = self.cluster.url(
            f"api/collaboration/room/{room}?sessionId={self.session['sessionId']}", scheme="ws"
        )
        conn = await websocket_connect(HTTPRequest(url, headers=self.cluster.headers))
        self.channel = QuietChannel(conn, room)
        self.provider = Provider(self.doc.ydoc, self.channel)
        self.task = asyncio.ensure_future(self.provider.start())
        await self.provider.started.wait()
        async with asyncio.timeout(20):
            await self.provider.synced.wait()

    async def disconnect(self) -> None:
        if self.channel is not None:
            self.channel.closed = True
            self.channel.conn.close()
        if self.provider is not None and self.task is not None and not self.task.done():
            try:
                await self.provider.stop()
            except Exception:
                pass
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=5)
            if self.task.done() and not self.task.cancelled():
                self.task.exception()  # a dropped connection may end it with an error: that is the point
        self.channel = self.provider = self.task = None

    async def reopen(self) -> None:
        """Close the notebook and open it again: a fresh document, loaded from the room."""
        await self.disconnect()
        self.doc = YNotebook()
        await self.connect()

    # Edits, made on the local document as JupyterLab makes them.

    def cells(self, avoid: set[str]) -> list[int]:
        return [i for i, c in enumerate(self.doc.ycells) if c.get("id") not in avoid]

    def edit(self, avoid: set[str]) -> str:
        """One random edit; returns what it did."""
        cells = self.cells(avoid)
        choice = self.rng.random()
        if not cells or choice < 0.2:
            return self.insert_cell()
        index = self.rng.choice(cells)
        if choice < 0.7:
            return self.type_text(index)
        if choice < 0.85:
            return self.delete_text(index) or self.type_text(index)
        return self.delete_cell(index)

    def insert_cell(self) -> str:
        mark = self.marker()
        cell_id = f"{self.name}-{self.count}-{uuid.uuid4().hex[:6]}"
        kind = self.rng.choice(["code", "markdown"])
        cell: dict[str, Any] = {"id": cell_id, "cell_type": kind, "source": mark, "metadata": {}}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        index = self.rng.randint(0, len(self.doc.ycells))
        with self.doc.ydoc.transaction():
            self.doc.ycells.insert(index, self.doc.create_ycell(cell))
        self.ledger.make(mark, cell_id)
        return f"insert cell {cell_id} at {index}"

    def type_text(self, index: int) -> str:
        ycell = self.doc.ycells[index]
        source = ycell["source"]
        text = str(source)
        at = self.rng.choice(boundaries(text))
        mark = self.marker()
        source.insert(byte_offset(text, at), mark)
        self.ledger.make(mark, str(ycell["id"]))
        return f"type {mark} in {ycell['id']}"

    def delete_text(self, index: int) -> str | None:
        ycell = self.doc.ycells[index]
        source = ycell["source"]
        text = str(source)
        found = list(MARKER.finditer(text))
        if not found:
            return None
        first = self.rng.randrange(len(found))
        last = min(len(found) - 1, first + self.rng.randint(0, 1))
        start, end = found[first].start(), found[last].end()
        gone = markers(text[start:end])
        del source[byte_offset(text, start) : byte_offset(text, end)]
        self.ledger.delete(gone)
        return f"delete {gone} in {ycell['id']}"

    def delete_cell(self, index: int) -> str:
        ycell = self.doc.ycells[index]
        cell_id = str(ycell["id"])
        self.ledger.delete_cell(cell_id, markers(str(ycell["source"])))
        with self.doc.ydoc.transaction():
            del self.doc.ycells[index]
        return f"delete cell {cell_id}"

    def move_cell(self, avoid: set[str]) -> str | None:
        """Move a cell as JupyterLab does: delete it and insert a copy (same id) elsewhere, in one transaction."""
        cells = self.cells(avoid)
        if len(self.doc.ycells) < 2 or not cells:
            return None
        source_index = self.rng.choice(cells)
        target = self.rng.choice([i for i in range(len(self.doc.ycells)) if i != source_index])
        ycell = self.doc.ycells[source_index]
        cell = ycell.to_py()
        cell_id = str(cell["id"])
        seen = set(markers(str(cell.get("source", ""))))
        with self.doc.ydoc.transaction():
            del self.doc.ycells[source_index]
            self.doc.ycells.insert(target, self.doc.create_ycell(cell))
        # What others typed into the cell and this person had not received yet stays in the old copy.
        self.ledger.moved_away.update(
            m for m, c in self.ledger.made.items() if c == cell_id and m not in seen
        )
        return f"move {cell_id} to {target}"

    async def save(self) -> None:
        """Ctrl-S in JupyterLab: the room's ``save`` message."""
        if not self.online:
            return
        encoder = Encoder()
        encoder.write_var_uint(2)  # RAW
        encoder.write_var_string("save")
        encoder.write_var_uint(1)
        assert self.channel is not None
        await self.channel.send(encoder.to_bytes())


# --- the agent: turns scripted per prompt ---------------------------------------------------------------------


def parse_read(text: str) -> list[dict[str, str]]:
    """Cells from notebook_read's text: ids, types and sources (each cell: a head line, its source, then its
    outputs, the first marked ``[output]``; an output may span lines)."""
    cells: list[dict[str, Any]] = []
    head = re.compile(r"^--- cell \d+ id=(\S+) type=(\w+)")
    in_outputs = False
    for line in text.split("\n")[1:]:
        m = head.match(line)
        if m:
            cells.append({"id": m.group(1), "type": m.group(2), "lines": []})
            in_outputs = False
        elif line.startswith("[output] ") or line.startswith("[shown: "):
            in_outputs = True
        elif cells and not in_outputs:
            cells[-1]["lines"].append(line)
    return [{"id": c["id"], "type": c["type"], "source": "\n".join(c["lines"])} for c in cells]


@dataclass
class TurnPlan:
    """What one agent turn does, decided when the model sees the notebook (its notebook_read result)."""

    key: str
    path: str
    rng: random.Random
    actions: int
    run: str | None = None  # code of a cell to insert and run at the end (SHORT_CELL / LONG_CELL)
    count: int = 0
    calls: list[ToolCallSpec] | None = None
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    bases: dict[str, str] = field(default_factory=dict)  # edit call id -> the source it was planned from
    known: dict[str, str] = field(default_factory=dict)  # cell id -> the source the model last sent or saw

    def marker(self) -> str:
        self.count += 1
        return f"⟨{self.key}:{self.count}⟩"

    def again(self, call: ToolCallSpec, messages: list[dict[str, Any]]) -> ToolCallSpec:
        """The call to make now, written from what the model knows of the cell: what it last sent, or what a
        refusal showed it (the tool asks to start again from there). A planned edit written from another
        source is rebuilt the same way: a line with a new marker."""
        last = str(messages[-1].get("content", "")) if messages and messages[-1].get("role") == "tool" else ""
        refused = re.match(r"Error: cell (\S+) was changed by someone else", last)
        if refused:
            self.known[refused.group(1)] = last.split("it is now:\n", 1)[1].rsplit("\nEdit it again", 1)[0]
        if call.name != "notebook_edit_cell":
            return call
        assert isinstance(call.arguments, dict)
        cell_id = call.arguments["cell_id"]
        known = self.known.get(cell_id)
        if known is not None and known != self.bases.get(call.id or ""):
            lines = known.split("\n")
            mark = self.marker()
            lines.insert(self.rng.randint(0, len(lines)), f"# {mark}")
            self.intents[call.id or ""] = {"adds": [mark], "removes": [], "cell": cell_id}
            call = ToolCallSpec(call.name, {**call.arguments, "source": "\n".join(lines)}, id=call.id)
        assert isinstance(call.arguments, dict)
        self.known[cell_id] = call.arguments["source"]
        return call

    def decide(self, cells: list[dict[str, str]]) -> list[ToolCallSpec]:
        calls: list[ToolCallSpec] = []
        live = [c for c in cells if "⟨" in c["source"] or c["source"] == ""]
        for _ in range(self.actions):
            call_id = f"{self.key}-{len(calls)}"
            choice = self.rng.random()
            if not live or choice < 0.35:
                mark = self.marker()
                index = self.rng.randint(0, len(cells))
                calls.append(
                    ToolCallSpec(
                        "notebook_insert_cell",
                        {"path": self.path, "source": f"# {mark}", "cell_type": "code", "index": index},
                        id=call_id,
                    )
                )
                self.intents[call_id] = {"adds": [mark]}
            elif choice < 0.85:
                cell = self.rng.choice(live)
                self.bases[call_id] = cell["source"]
                lines = cell["source"].split("\n")
                removes: list[str] = []
                if self.rng.random() < 0.4:  # take one marker out of a line
                    marked = [i for i, line in enumerate(lines) if MARKER.search(line)]
                    if marked:
                        i = self.rng.choice(marked)
                        found = markers(lines[i])
                        gone = self.rng.choice(found)
                        lines[i] = lines[i].replace(gone, "", 1)
                        removes.append(gone)
                mark = self.marker()
                lines.insert(self.rng.randint(0, len(lines)), f"# {mark}")  # and add a line of its own
                calls.append(
                    ToolCallSpec(
                        "notebook_edit_cell",
                        {"path": self.path, "cell_id": cell["id"], "source": "\n".join(lines)},
                        id=call_id,
                    )
                )
                self.intents[call_id] = {"adds": [mark], "removes": removes, "cell": cell["id"]}
                cell["source"] = "\n".join(lines)  # a second edit of this cell in the turn starts from here
            else:
                cell = self.rng.choice(live)
                live.remove(cell)
                calls.append(
                    ToolCallSpec(
                        "notebook_delete_cell", {"path": self.path, "cell_id": cell["id"]}, id=call_id
                    )
                )
                self.intents[call_id] = {"cell": cell["id"], "seen": markers(cell["source"])}
        if self.run is not None:
            mark = self.marker()
            call_id = f"{self.key}-run"
            calls.append(
                ToolCallSpec(
                    "notebook_insert_cell",
                    {"path": self.path, "source": f"# {mark}\n{self.run}", "cell_type": "code"},
                    id=call_id,
                )
            )
            self.intents[call_id] = {"adds": [mark], "runs": True}
        return calls


class AgentModel:
    """The scripted model's default answer: each prompt names a registered TurnPlan ("turn <key>")."""

    def __init__(self) -> None:
        self.plans: dict[str, TurnPlan] = {}
        self._lock = threading.Lock()

    def register(self, plan: TurnPlan) -> None:
        with self._lock:
            self.plans[plan.key] = plan

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        prompt = str(messages[last_user].get("content"))
        found = re.search(r"turn (\S+)", prompt)
        with self._lock:
            plan = self.plans.get(found.group(1)) if found else None
        if plan is None:
            return Reply(text="nothing to do")
        after = messages[last_user + 1 :]
        tools = [m for m in after if m.get("role") == "tool"]
        if not tools:
            return Reply(
                tool_calls=[ToolCallSpec("notebook_read", {"path": plan.path}, id=f"{plan.key}-read")]
            )
        if plan.calls is None:
            plan.calls = plan.decide(parse_read(str(tools[0].get("content"))))
        step = len(tools) - 1
        if step < len(plan.calls):
            return Reply(tool_calls=[plan.again(plan.calls[step], after)])
        if plan.run is not None and step == len(plan.calls):
            inserted = re.search(r"Inserted code cell (\S+)", str(tools[-1].get("content")))
            if inserted:
                return Reply(
                    tool_calls=[
                        ToolCallSpec(
                            "notebook_run_cell",
                            {"path": plan.path, "cell_id": inserted.group(1)},
                            id=f"{plan.key}-exec",
                        )
                    ]
                )
        return Reply(text="done")


# --- one scenario ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    lost: list[str] = field(default_factory=list)  # markers missing (or not exactly once)
    divergent: list[str] = field(default_factory=list)  # views that differ
    faults: Counter = field(default_factory=Counter)
    timings: Counter = field(default_factory=Counter)  # seconds per kind of step
    checked: int = 0  # edits looked for at the end (made, and not deleted by anyone)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.divergent


@dataclass
class Step:
    kind: str  # edit | move | agent | fault
    who: int = 0
    arg: str = ""


def plan_scenario(seed: int) -> tuple[int, list[Step]]:
    """The people and steps of scenario ``seed`` (pure: the same seed gives the same plan)."""
    rng = random.Random(seed)
    people = rng.randint(2, 4)
    steps: list[Step] = []
    faults = rng.sample(["reconnect", "sleep", "reload", "save_race", "external"], rng.randint(1, 2))
    if rng.random() < 0.03:
        faults.append("restart")
    if rng.random() < 0.03:
        faults.append("kernel_kill")
    for _ in range(rng.randint(6, 14)):
        r = rng.random()
        if r < 0.78:
            steps.append(Step("edit", rng.randrange(people)))
        elif r < 0.86:
            steps.append(Step("move", rng.randrange(people)))
        else:
            steps.append(Step("agent", arg="run" if rng.random() < 0.2 else "edit"))
    for fault in faults:
        steps.insert(rng.randint(1, len(steps)), Step("fault", rng.randrange(people), fault))
    return people, steps


class Scenario:
    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster = cluster
        self.seed = seed
        self.rng = random.Random(seed * 7919 + 1)
        self.path = f"conv-{seed}.ipynb"
        self.ledger = Ledger()
        self.outcome = Outcome(seed)
        self.people: list[Person] = []
        self.turns: list[asyncio.Task] = []
        self.running: set[str] = set()  # cells an agent turn runs right now (people leave them alone)
        self.session: str | None = None
        self.turn_count = 0
        self.log: list[str] = []

    # setup and steps

    def write_notebook(self) -> None:
        cells = []
        for i in range(self.rng.randint(1, 3)):
            mark = f"⟨in:{i}⟩"
            cells.append(
                {
                    "id": f"init{i}",
                    "cell_type": "code",
                    "source": f"# {mark}",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
            )
            self.ledger.make(mark, f"init{i}")
        nb = {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.cluster.root / self.path).write_text(json.dumps(nb, indent=1), encoding="utf-8")

    async def run(self) -> Outcome:
        started = time.perf_counter()
        count, steps = plan_scenario(self.seed)
        self.write_notebook()
        self.people = [
            Person(f"h{i}", self.cluster, self.path, self.ledger, random.Random(self.seed * 31 + i))
            for i in range(count)
        ]
        try:
            for person in self.people:
                await person.connect()
            for step in steps:
                await self.step(step)
            began = time.perf_counter()
            await self.settle()
            self.outcome.timings["settle"] += time.perf_counter() - began
            self.log.append(f"  (settle: {time.perf_counter() - began:.2f} s)")
        except Exception as err:  # a step that cannot even run is a divergence: report it with its seed
            where = traceback.extract_tb(err.__traceback__)[-3:]
            self.outcome.divergent.append(
                f"scenario failed: {err!r} at " + " < ".join(f"{f.name}:{f.lineno}" for f in reversed(where))
            )
        finally:
            for task in self.turns:
                task.cancel()
            for person in self.people:
                await person.disconnect()
            await self.stop_kernel()
        self.outcome.seconds = time.perf_counter() - started
        return self.outcome

    async def stop_kernel(self) -> None:
        """Shut the notebook's kernel down: scenarios share the server, kernels would pile up."""
        try:
            for session in await self.cluster.request("GET", "api/sessions"):
                if session.get("path") == self.path:
                    await self.cluster.request("DELETE", f"api/sessions/{session['id']}")
        except Exception as err:
            self.outcome.notes.append(f"could not stop the kernel: {err!r}")

    async def step(self, step: Step) -> None:
        began = time.perf_counter()
        await self._step(step)
        spent = time.perf_counter() - began
        self.outcome.timings[f"{step.kind} {step.arg}".strip()] += spent
        self.log.append(f"  ({step.kind} {step.arg}: {spent:.2f} s)")

    async def _step(self, step: Step) -> None:
        if step.kind == "edit":
            person = self.people[step.who]
            self.log.append(f"{person.name}: {person.edit(self.running)}")
        elif step.kind == "move":
            await self.move(self.people[step.who])
        elif step.kind == "agent":
            await self.agent_turn(step.arg)
        else:
            self.outcome.faults[step.arg] += 1
            self.log.append(f"fault {step.arg}")
            await getattr(self, f"fault_{step.arg}")(self.people[step.who])
        await asyncio.sleep(self.rng.choice([0, 0, 0.005, 0.02]))  # let some edits cross, others not

    async def move(self, person: Person) -> None:
        """Moves are a delete and a re-insert in JupyterLab: concurrent typing in the moved cell goes to the
        deleted copy. That is JupyterLab's behaviour, not ours: move only when everyone is online and in sync."""
        if not all(p.online for p in self.people) or self.agent_busy():
            return
        await self.converged()
        done = person.move_cell(self.running)
        if done:
            self.log.append(f"{person.name}: {done}")
            await self.converged()

    def agent_busy(self) -> bool:
        return any(not t.done() for t in self.turns)

    async def agent_socket(self) -> tuple[WebSocketClientConnection, int]:
        if self.session is None:
            self.session = (await self.cluster.request("POST", "api/agent/sessions", {"title": self.path}))[
                "id"
            ]
        url = self.cluster.url(f"api/agent/sessions/{self.session}/ws", scheme="ws")
        conn = await websocket_connect(HTTPRequest(url, headers=self.cluster.headers))
        hello = json.loads(await asyncio.wait_for(conn.read_message(), 20))
        assert hello["type"] == "hello", hello
        return conn, hello["last_seq"]

    async def agent_turn(self, kind: str, code: str | None = None) -> tuple[asyncio.Task, TurnPlan]:
        """Start a turn (it runs on while people edit); at most one at a time per session."""
        for task in self.turns:
            await asyncio.wait({task}, timeout=60)
        self.turn_count += 1
        plan = TurnPlan(
            key=f"a{self.seed}t{self.turn_count}",
            path=self.path,
            rng=random.Random(f"{self.seed}:{self.turn_count}"),
            actions=self.rng.randint(1, 3),
            run=code if code is not None else (SHORT_CELL if kind == "run" else None),
        )
        self.cluster.model.register(plan)
        conn, seen = await self.agent_socket()
        await conn.write_message(json.dumps({"type": "prompt", "text": f"turn {plan.key}"}))
        task = asyncio.ensure_future(self.follow_turn(conn, plan, seen))
        self.turns.append(task)
        return task, plan

    async def follow_turn(
        self, conn: WebSocketClientConnection, plan: TurnPlan, seen: int
    ) -> dict[str, Any] | None:
        """Read the turn's frames; book what its tools did. Returns the run's result, if any."""
        run_result = None
        try:
            async with asyncio.timeout(90):
                while True:
                    message = await conn.read_message()
                    if message is None:
                        self.log.append(f"{plan.key}: socket closed")
                        return run_result
                    frame = json.loads(message)
                    if frame.get("seq", seen + 1) <= seen:  # the session's earlier turns, replayed
                        continue
                    kind = frame.get("type")
                    if kind == "tool_call" and frame.get("name") == "notebook_edit_cell":
                        self.log.append(f"{plan.key}: edit {frame.get('arguments')}")
                    if kind == "tool_call" and frame.get("name") == "notebook_run_cell":
                        self.running.add(frame.get("arguments", {}).get("cell_id", ""))
                    elif kind == "tool_result":
                        self.book(plan, frame)
                        if frame.get("name") == "notebook_run_cell":
                            run_result = frame
                    elif kind in ("done", "error"):
                        self.log.append(f"{plan.key}: {kind} {frame.get('message', '')}")
                        return run_result
        finally:
            self.running.clear()
            conn.close()

    def book(self, plan: TurnPlan, frame: dict[str, Any]) -> None:
        intent = plan.intents.get(frame.get("call_id", ""))
        self.log.append(
            f"{plan.key}: {frame.get('name')} ok={frame.get('ok')} {str(frame.get('content'))[:80]!r}"
        )
        if intent is None or not frame.get("ok"):
            return
        data = frame.get("data") or {}
        if frame["name"] == "notebook_delete_cell":
            self.ledger.delete_cell(intent["cell"], intent["seen"])
            return
        for mark in intent.get("adds", []):
            self.ledger.make(mark, str(data.get("cell_id")))
        self.ledger.delete(intent.get("removes", []))
        if intent.get("runs"):
            self.running.add(str(data.get("cell_id")))

    # faults

    async def fault_reconnect(self, person: Person) -> None:
        await person.disconnect()
        for _ in range(self.rng.randint(1, 4)):
            self.log.append(f"{person.name} offline: {person.edit(self.running)}")
            other = self.rng.choice(self.people)
            if other.online:
                self.log.append(f"{other.name}: {other.edit(self.running)}")
            await asyncio.sleep(0)
        await person.connect()

    async def room_freed(self, action) -> None:
        """Everyone leaves (``action`` runs while they are away) until the room is freed, then they return."""
        assert self.people[0].session is not None
        room = f"Room json:notebook:{self.people[0].session['fileId']} deleted"
        for task in self.turns:  # the agent holds the room while a turn edits it
            await asyncio.wait({task}, timeout=60)
        cleaning = f"Cleaning room: json:notebook:{self.people[0].session['fileId']}"
        before, scheduled = self.cluster.log_count(room), self.cluster.log_count(cleaning)
        # What people typed has reached the room before they go (JupyterLab sends each change at once; this
        # client sends from a task, and a notebook closed right after an edit would drop it on the floor).
        await self.converged()
        for p in self.people:
            await p.disconnect()
        await action()
        # jupyter-collaboration schedules the clean-up only when the closing client is the room's last one;
        # when all close in one burst none of them is (the others are not removed yet) and the room stays.
        # Someone opening and closing the notebook then frees it, as in real life.
        async with asyncio.timeout(20):
            while self.cluster.log_count(cleaning) <= scheduled:
                try:
                    async with asyncio.timeout(1):
                        while self.cluster.log_count(cleaning) <= scheduled:
                            await asyncio.sleep(0.05)
                except TimeoutError:
                    visitor = Person("obs", self.cluster, self.path, Ledger(), random.Random(0))
                    await visitor.connect()
                    await visitor.disconnect()
            while self.cluster.log_count(room) <= before:
                await asyncio.sleep(0.05)

    async def fault_sleep(self, sleeper: Person) -> None:
        sleepers = [sleeper] + [p for p in self.people if p is not sleeper and self.rng.random() < 0.3]

        async def offline_edits() -> None:
            for p in sleepers:
                for _ in range(self.rng.randint(1, 3)):
                    self.log.append(f"{p.name} asleep: {p.edit(self.running)}")

        await self.room_freed(offline_edits)
        for p in self.people:
            if p in sleepers:
                self.log.append(f"{p.name} wakes up")
                await p.connect()
            else:
                await p.reopen()

    async def fault_reload(self, person: Person) -> None:
        async def nothing() -> None:
            return None

        await self.room_freed(nothing)
        for p in self.people:
            await (p.connect() if self.rng.random() < 0.5 else p.reopen())

    async def fault_save_race(self, person: Person) -> None:
        await person.save()
        for other in self.people:
            if other.online:
                self.log.append(f"{other.name} (racing a save): {other.edit(self.running)}")
        await person.save()

    async def fault_external(self, person: Person) -> None:
        """Another program changes the file: it reads it when it is saved and quiet, adds a cell, writes it."""
        for task in self.turns:
            await asyncio.wait({task}, timeout=60)
        for p in self.people:
            if not p.online:
                await p.connect()
        view = await self.converged()
        disk = self.cluster.root / self.path
        # The program works on a quiet file: saved, and unchanged for two of the room's polls. (jupyter-collaboration
        # misses a write that lands between its own save's write and the stat after it: that write is then
        # overwritten by the room's next save. A program writing the very moment the room saves hits it.)
        quiet = 2 * SERVER_CONFIG["YDocExtension"]["file_poll_interval"]
        async with asyncio.timeout(20):
            while disk_view(disk) != view or time.time() - disk.stat().st_mtime < quiet:
                await asyncio.sleep(0.02)
        nb = json.loads(disk.read_text(encoding="utf-8"))
        mark = f"⟨ex:{self.turn_count}{len(nb['cells'])}⟩"
        cell_id = f"ext-{uuid.uuid4().hex[:8]}"
        nb["cells"].insert(
            self.rng.randint(0, len(nb["cells"])),
            {"id": cell_id, "cell_type": "markdown", "metadata": {}, "source": [mark]},
        )
        stat = disk.stat()
        disk.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        os.utime(disk, ns=(stat.st_atime_ns, max(stat.st_mtime_ns + 1_000_000_000, time.time_ns())))
        self.ledger.make(mark, cell_id)
        # The room notices the change at its next poll and everyone gets the program's cell.
        async with asyncio.timeout(20):
            while not all(
                any(c["id"] == cell_id and mark in str(c["source"]) for c in p.doc.ycells)
                for p in self.people
            ):
                await asyncio.sleep(0.02)

    async def long_run(self) -> tuple[asyncio.Task, Person, str] | None:
        """Start an agent turn that inserts and runs a long streaming cell; returns once it streams."""
        task, _ = await self.agent_turn("run", code=LONG_CELL)
        watcher = next((p for p in self.people if p.online), None)
        if watcher is None:
            await self.people[0].connect()
            watcher = self.people[0]

        def streaming() -> str | None:
            for c in watcher.doc.ycells:
                outs = c["outputs"].to_py() if c.get("cell_type") == "code" else []
                text = "".join(str(o.get("text", "")) for o in outs or [])
                if "tick" in text and "pid" in text:
                    return text
            return None

        async with asyncio.timeout(60):
            while not (text := streaming()):
                if task.done():
                    self.outcome.notes.append("long cell did not stream")
                    return None
                await asyncio.sleep(0.02)
        return task, watcher, text

    async def fault_restart(self, person: Person) -> None:
        started = await self.long_run()
        if started is None:
            return
        task = started[0]
        for p in self.people:
            await p.disconnect()
        await self.cluster.restart()
        await asyncio.wait({task}, timeout=30)
        for p in self.people:
            await p.connect()

    async def fault_kernel_kill(self, person: Person) -> None:
        started = await self.long_run()
        if started is None:
            return
        task, _, text = started
        pid = int(re.search(r"pid (\d+)", text).group(1))  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait({task}, timeout=60)
        result = task.result() if task.done() else None
        status = ((result or {}).get("data") or {}).get("status")
        if status != "kernel_died":
            self.outcome.divergent.append(f"killed kernel reported as {status!r}, not kernel_died")

    # the end: everyone converges, nothing lost

    async def converged(self, timeout: float = SETTLE) -> list[tuple]:
        """Wait until every online person and a fresh client see the same notebook; returns it."""
        observer = Person("obs", self.cluster, self.path, Ledger(), random.Random(0))
        await observer.connect()
        try:
            online = [p for p in self.people if p.online]
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        server = doc_view(observer.doc)
                        if all(doc_view(p.doc) == server for p in online):
                            return server
                        await asyncio.sleep(0.02)
            except TimeoutError:
                server = doc_view(observer.doc)
                for p in online:
                    if doc_view(p.doc) != server:
                        self.outcome.divergent.append(
                            f"{p.name} differs from the server:\n  {p.name}: {doc_view(p.doc)}\n  server: {server}"
                        )
                raise
        finally:
            await observer.disconnect()

    async def settle(self) -> None:
        for task in self.turns:
            await asyncio.wait({task}, timeout=90)
        for p in self.people:
            if not p.online:
                await p.connect()
        try:
            server = await self.converged()
        except TimeoutError:
            return
        disk = self.cluster.root / self.path
        try:
            async with asyncio.timeout(SETTLE):
                while disk_view(disk) != server:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            self.outcome.divergent.append(
                f"disk differs from the server:\n  disk: {disk_view(disk)}\n  server: {server}"
            )
        text = Counter(m for cell in server for m in markers(cell[2]))
        self.outcome.checked = len(self.ledger.expected())
        for mark in sorted(self.ledger.expected()):
            if text[mark] != 1:
                self.outcome.lost.append(f"{mark} appears {text[mark]} times (cell {self.ledger.made[mark]})")
        if self.outcome.lost:
            self.log.append(f"server: {server}")
        unknown = set(text) - set(self.ledger.made)
        if unknown:
            self.outcome.divergent.append(f"markers nobody made: {sorted(unknown)}")


async def run_seed(cluster: Cluster, seed: int) -> tuple[Outcome, list[str]]:
    scenario = Scenario(cluster, seed)
    outcome = await scenario.run()
    return outcome, scenario.log


async def run_seeds(
    cluster: Cluster, seeds: list[int], parallel: int, report, deadline: float | None = None
) -> None:
    """Run scenarios ``parallel`` at a time on the shared server (each on its own notebook); a scenario that
    restarts the server runs alone. ``report(outcome, log)`` is called as each one ends. No seed starts after
    ``deadline`` (a ``time.perf_counter()`` value)."""
    free = asyncio.Semaphore(parallel)
    running: set[asyncio.Task] = set()

    async def one(seed: int) -> None:
        try:
            report(*await run_seed(cluster, seed))
        finally:
            free.release()

    for seed in seeds:
        if deadline is not None and time.perf_counter() > deadline:
            break
        alone = "restart" in (step.arg for step in plan_scenario(seed)[1])
        if alone and running:
            await asyncio.wait(running)
        await free.acquire()
        task = asyncio.ensure_future(one(seed))
        running.add(task)
        task.add_done_callback(running.discard)
        if alone:
            await asyncio.wait({task})
    if running:
        await asyncio.wait(running)
