"""Load on one server: many chat sessions, REST clients and collaborators at once, then a memory soak.

Starts the scripted model in its own process and a real Jupyter server with the agent (both on 127.0.0.1),
then splits the load across client worker processes (asyncio each, bounded connections):
- ``--sessions`` chat sessions, each with its own WebSocket; each sends a prompt every ``--turn-every``
  seconds (first ones spread evenly over that interval) and reads the streamed answer;
- ``--rest-clients`` REST clients (keep-alive), each making a request every ``--rest-every`` seconds:
  its session (50%), the session's events after its last seq (34%), health (10%), the tools (5%), the
  session list (1%: the chat panel asks for it when it opens; it is O(sessions));
- ``--collaborators`` pycrdt clients (real collaboration WebSockets) watching one notebook that one more
  agent session edits every ``--edit-every`` seconds with ``notebook_edit_cell``.
It measures for ``--seconds``, then keeps the same load for ``--soak`` seconds while sampling the server's
memory. Figures (definitions printed with them): errors, token delivery, REST latency, edit propagation,
RSS per idle session, server CPU, memory slope; and the client workers' own CPU and event-loop lag, which
say whether the load generator kept up.

    .venv/bin/python benchmarks/load.py --sessions 1000 --seconds 120 --soak 600
    .venv/bin/python benchmarks/load.py --sessions 20 --seconds 5 --soak 0      # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import random
import re
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_agent.testing.processes import cpu_seconds, rss_mib

NOTEBOOK = "load.ipynb"
TARGET_CELL = "target"
EDIT_PROMPT = re.compile(r"LOADEDIT (\d+)")
EDIT_SOURCE = re.compile(r"# load edit (\d+)")
TOKEN_DEFINITION = (
    "token delivery = client receive time - the moment the model server wrote that chunk (each chunk carries "
    "its write time), per token frame; includes litellm, the agent loop, the event log and the WebSocket"
)
PROPAGATION_DEFINITION = (
    "edit propagation = moment a collaborator's document has the edit - start of the agent's "
    "notebook_edit_cell call (tool_result ts - duration_ms), per edit and collaborator; an upper bound "
    "that includes the tool's own work"
)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name:<34} p50 {pct(values, 50):8.2f} {unit}   p99 {pct(values, 99):8.2f} {unit}   "
        f"max {max(values, default=float('nan')):8.2f} {unit}   (n={len(values)})"
    )


# -- the model: the project's scripted LLM, in its own process -------------------------------------------


def serve_model(chunk_delay: float, tokens: int) -> None:
    """Answer chat prompts with ``tokens`` stamped pieces; ``LOADEDIT k`` prompts with a notebook edit."""
    from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec

    answer = Reply(text=" ".join(f"w{i}" for i in range(tokens)), stamp=True)

    def step(body: dict[str, Any]) -> Reply:
        last = (body.get("messages") or [{}])[-1]
        if last.get("role") == "tool":
            return Reply(text="edited", stamp=True)
        found = EDIT_PROMPT.search(str(last.get("content", "")))
        if found is None:
            return answer
        args = {"path": NOTEBOOK, "cell_id": TARGET_CELL, "source": f"# load edit {found.group(1)}"}
        return Reply(tool_calls=[ToolCallSpec("notebook_edit_cell", args)])

    llm = ScriptedLLM(chunk_delay=chunk_delay)
    llm.default = step
    llm.start()
    print(llm.base_url, flush=True)
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        llm.stop()


# -- /proc ---------------------------------------------------------------------------------------------


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (m - my) for t, m in samples)
    return sxy / sxx * 60 if sxx else float("nan")


# -- client workers ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one worker process drives."""

    index: int
    port: int
    token: str
    sessions: int
    rest_clients: int
    collaborators: int
    editor: bool
    turn_every: float
    rest_every: float
    edit_every: float
    seconds: float
    soak: float


@dataclass
class Results:
    tokens: list[tuple[float, float]] = field(default_factory=list)  # (receive time, ms)
    rest: list[tuple[float, str, float]] = field(default_factory=list)  # (time, endpoint, ms)
    edits: dict[int, float] = field(default_factory=dict)  # edit -> its tool call's start (epoch s)
    seen: list[tuple[int, int, float]] = field(default_factory=list)  # (collaborator, edit, epoch s)
    turns: list[float] = field(default_factory=list)  # end times of completed turns
    lag: list[float] = field(default_factory=list)  # event-loop lag samples, ms
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    unstamped: int = 0
    setup: dict[str, float] = field(default_factory=dict)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")


class Worker:
    def __init__(self, plan: Plan, events: dict[str, Any], report: Any) -> None:
        self.plan = plan
        self.events = events
        self.report = report
        self.out = Results()
        self.headers = {"Authorization": f"token {plan.token}"}
        self.base = f"http://127.0.0.1:{plan.port}"
        self.start = 0.0
        self.seen_by: dict[int, set[int]] = {}  # collaborator -> the edits it has seen
        self.measure_end = 0.0
        self.deadline = 0.0

    async def wait_event(self, name: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.events[name].wait)

    async def run(self) -> None:
        import aiohttp

        plan = self.plan
        connector = aiohttp.TCPConnector(limit=max(1, plan.rest_clients) + 20)
        async with aiohttp.ClientSession(connector=connector, headers=self.headers) as http:
            self.http = http
            if plan.editor:
                await self.warm_up()
                self.report.put(("warm", plan.index))
            await self.wait_event("create")
            began = time.perf_counter()
            sockets = await self.open_sessions(plan.sessions)
            self.out.setup["sessions_s"] = time.perf_counter() - began
            self.report.put(("idle", plan.index))
            await self.wait_event("setup")
            editor = await self.open_sessions(1) if plan.editor else []
            ready = [asyncio.Event() for _ in range(plan.collaborators)]
            stop = asyncio.Event()
            watchers = [
                asyncio.create_task(self.collaborate(plan.index * 1000 + i, ready[i], stop))
                for i in range(plan.collaborators)
            ]
            for event in ready:
                await event.wait()
            ids = [sid for sid, _ in sockets] or [sid for sid, _ in editor]
            self.report.put(("ready", plan.index))
            await self.wait_event("go")
            self.start = self.events["start"].value
            self.measure_end = self.start + plan.seconds
            self.deadline = self.measure_end + plan.soak
            jobs = [self.chat(sid, sock) for sid, sock in sockets]
            jobs += [self.rest(ids[i % len(ids)]) for i in range(plan.rest_clients)] if ids else []
            jobs += [self.edit(*editor[0])] if editor else []
            jobs.append(self.watch_lag())
            await asyncio.gather(*jobs)
            await self.wait_event("edits_done")
            last = self.events["last_edit"].value
            try:  # the last edit may still be on its way (seconds, when the server is overloaded)
                async with asyncio.timeout(30):
                    while any(last not in seen for seen in self.seen_by.values()):
                        await asyncio.sleep(0.05)
            except TimeoutError:
                pass
            stop.set()
            await asyncio.gather(*watchers)
            for _, sock in sockets + editor:
                sock.close()

    async def warm_up(self) -> None:
        """One chat turn and one edit before anything is measured (litellm's first call is slow)."""
        (_, sock), *_ = await self.open_sessions(1)
        for text in ("hello", "LOADEDIT 0"):
            await sock.write_message(json.dumps({"type": "prompt", "text": text}))
            while True:
                frame = json.loads(await asyncio.wait_for(sock.read_message(), 120))
                if frame["type"] in ("done", "error"):
                    if frame["type"] == "error":
                        raise RuntimeError(f"warm-up turn failed: {frame}")
                    break
        sock.close()

    async def open_sessions(self, n: int) -> list[tuple[str, Any]]:
        """Create ``n`` sessions and connect a WebSocket to each, 25 at a time."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        gate = asyncio.Semaphore(25)

        async def one(i: int) -> tuple[str, Any]:
            async with gate:
                async with self.http.post(
                    f"{self.base}/api/agent/sessions", json={"title": f"load {self.plan.index}-{i}"}
                ) as r:
                    if r.status != 201:
                        raise RuntimeError(f"session create: {r.status} {await r.text()}")
                    sid = (await r.json())["id"]
                url = f"ws://127.0.0.1:{self.plan.port}/api/agent/sessions/{sid}/ws"
                sock = await websocket_connect(HTTPRequest(url, headers=self.headers))
                sock.protocol.set_nodelay(True)
                hello = json.loads(await sock.read_message())
                if hello.get("type") != "hello":
                    raise RuntimeError(f"expected hello, got {hello}")
                return sid, sock

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    async def turn(self, sid: str, sock: Any, text: str, last_seq: list[int], on_frame: Any = None) -> bool:
        """One prompt to its done; token delivery recorded; False when the turn failed."""
        await sock.write_message(
            json.dumps({"type": "prompt", "text": text, "context": {"notebook": NOTEBOOK}})
        )
        async with asyncio.timeout(120):
            while True:
                message = await sock.read_message()
                now = time.time()
                if message is None:
                    self.out.error("websocket_closed", sid)
                    return False
                frame = json.loads(message)
                seq = frame.get("seq")
                if seq is not None:
                    if last_seq[0] and seq != last_seq[0] + 1:
                        self.out.error("seq_gap", f"{sid}: {last_seq[0]} -> {seq}")
                    last_seq[0] = seq
                kind = frame.get("type")
                if kind == "token":
                    stamp = frame.get("text", "").rpartition("@")[2]
                    try:
                        sent = float(stamp)
                    except ValueError:
                        self.out.unstamped += 1
                    else:
                        if now <= self.measure_end:  # the soak only watches memory
                            self.out.tokens.append((now, (now - sent) * 1000))
                elif on_frame is not None:
                    on_frame(frame)
                if kind == "error":
                    self.out.error(f"turn_{frame.get('code')}", frame.get("message", ""))
                    return False
                if kind == "done":
                    self.out.turns.append(now)
                    return True

    async def chat(self, sid: str, sock: Any) -> None:
        every = self.plan.turn_every
        at = self.start + random.uniform(0, every)
        last_seq = [0]
        while at < self.deadline:
            await asyncio.sleep(max(0.0, at - time.time()))
            try:
                await self.turn(sid, sock, "Say something.", last_seq)
            except TimeoutError:
                self.out.error("turn_timeout", sid)
            except Exception as err:
                self.out.error("client_exception", f"{type(err).__name__}: {err}")
                return
            at = max(at + every, time.time())

    async def edit(self, sid: str, sock: Any) -> None:
        k = 0
        last_seq = [0]

        def on_frame(frame: dict[str, Any]) -> None:
            if frame.get("type") == "tool_result":
                if not frame.get("ok"):
                    self.out.error("edit_failed", str(frame.get("content")))
                else:
                    self.out.edits[k] = frame["ts"] - frame["duration_ms"] / 1000

        at = self.start
        try:
            while at < self.deadline:
                await asyncio.sleep(max(0.0, at - time.time()))
                k += 1
                try:
                    await self.turn(sid, sock, f"LOADEDIT {k}", last_seq, on_frame)
                except TimeoutError:
                    self.out.error("turn_timeout", f"edit {k}")
                at = max(at + self.plan.edit_every, time.time())
        finally:
            self.events["last_edit"].value = max(self.out.edits, default=0)
            self.events["edits_done"].set()

    async def rest(self, sid: str) -> None:
        every = self.plan.rest_every
        at = self.start + random.uniform(0, every)
        after = 0
        while at < self.deadline:
            await asyncio.sleep(max(0.0, at - time.time()))
            pick = random.random()
            if pick < 0.5:
                name, path = "session", f"/api/agent/sessions/{sid}"
            elif pick < 0.84:
                name, path = "events", f"/api/agent/sessions/{sid}/events?after={after}&limit=100"
            elif pick < 0.94:
                name, path = "health", "/api/agent/health"
            elif pick < 0.95:
                name, path = "list", "/api/agent/sessions"
            else:
                name, path = "tools", "/api/agent/tools"
            sent = time.perf_counter()
            try:
                async with self.http.get(self.base + path) as r:
                    body = await r.read()
                    ms = (time.perf_counter() - sent) * 1000
                    if r.status != 200:
                        self.out.error(f"rest_{r.status}", f"{path}: {body[:200]!r}")
                    else:
                        self.out.rest.append((time.time(), name, ms))
                        if name == "session":
                            after = max(0, json.loads(body)["last_seq"] - 20)
            except Exception as err:
                self.out.error("rest_exception", f"{path}: {type(err).__name__}: {err}")
            at = max(at + every * random.uniform(0.8, 1.2), time.time())

    async def collaborate(self, who: int, ready: asyncio.Event, stop: asyncio.Event) -> None:
        """A person's JupyterLab on the notebook: records when each agent edit arrives."""
        from jupyter_ydoc import YNotebook
        from pycrdt import Provider
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        from tests.clients import TornadoChannel

        try:
            async with self.http.put(
                f"{self.base}/api/collaboration/session/{NOTEBOOK}",
                json={"format": "json", "type": "notebook"},
            ) as r:
                session = await r.json()
            room = f"json:notebook:{session['fileId']}"
            url = f"ws://127.0.0.1:{self.plan.port}/api/collaboration/room/{room}?sessionId={session['sessionId']}"
            conn = await websocket_connect(HTTPRequest(url, headers=self.headers))
            doc = YNotebook()
            seen = self.seen_by[who] = set()

            def look(*_: Any) -> None:
                now = time.time()
                for cell in doc.ycells:
                    found = EDIT_SOURCE.match(str(cell["source"]))
                    if found and int(found.group(1)) not in seen:
                        seen.add(int(found.group(1)))
                        self.out.seen.append((who, int(found.group(1)), now))
                if not ready.is_set() and len(doc.ycells):
                    ready.set()

            doc.ycells.observe_deep(look)
            async with Provider(doc.ydoc, TornadoChannel(conn, room)):
                await stop.wait()
            conn.close()
        except Exception as err:
            self.out.error("collaborator_exception", f"{type(err).__name__}: {err}")
            ready.set()

    async def watch_lag(self) -> None:
        """How late this worker's event loop wakes up: if it is late, the client side limits the figures."""
        while time.time() < self.deadline:
            before = time.perf_counter()
            await asyncio.sleep(0.05)
            self.out.lag.append((time.perf_counter() - before - 0.05) * 1000)


def worker_main(plan: Plan, events: dict[str, Any], report: Any) -> None:
    try:
        worker = Worker(plan, events, report)
        asyncio.run(worker.run())
        report.put(("result", plan.index, worker.out))
    except BaseException:
        report.put(("fail", plan.index, traceback.format_exc()))


# -- the benchmark -------------------------------------------------------------------------------------


def notebook_json() -> str:
    cell = {
        "cell_type": "code",
        "id": TARGET_CELL,
        "source": "# load edit 0",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({"cells": [cell], "metadata": meta, "nbformat": 4, "nbformat_minor": 5})


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Monitor:
    """Samples the server's RSS and the CPU of the server and the client workers."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.samples: list[tuple[float, float]] = []

    def sample(self) -> float:
        value = rss_mib(self.pid)
        self.samples.append((time.time(), value))
        return value


def wait_for(report: Any, kind: str, workers: int, procs: list[Any], timeout: float) -> dict[int, Any]:
    got: dict[int, Any] = {}
    deadline = time.time() + timeout
    while len(got) < workers:
        try:
            message = report.get(timeout=1.0)
        except queue.Empty:
            if time.time() > deadline:
                raise TimeoutError(f"workers did not report {kind!r} within {timeout:.0f} s") from None
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a client worker died") from None
            continue
        if message[0] == "fail":
            raise RuntimeError(f"client worker {message[1]} failed:\n{message[2]}")
        if message[0] != kind:
            raise RuntimeError(f"expected {kind!r} from the workers, got {message[0]!r}")
        got[message[1]] = message[2] if len(message) > 2 else None
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="concurrent chat sessions (default 1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load time (default 60)")
    parser.add_argument(
        "--soak", type=float, default=600.0, help="memory soak after it, seconds (default 600)"
    )
    parser.add_argument("--rest-clients", type=int, default=200, help="REST clients (default 200)")
    parser.add_argument("--rest-every", type=float, default=1.0, help="seconds between one client's requests")
    parser.add_argument("--collaborators", type=int, default=50, help="pycrdt clients on the notebook (50)")
    parser.add_argument(
        "--turn-every", type=float, default=30.0, help="seconds between one session's prompts"
    )
    parser.add_argument("--edit-every", type=float, default=1.0, help="seconds between the agent's edits")
    parser.add_argument("--tokens", type=int, default=20, help="streamed pieces per answer (default 20)")
    parser.add_argument("--chunk-delay", type=float, default=0.03, help="model seconds between pieces")
    parser.add_argument("--workers", type=int, default=2, help="client worker processes (default 2)")
    parser.add_argument("--serve-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_model:
        serve_model(args.chunk_delay, args.tokens)
        return 0

    from jupyter_agent.testing.jupyter import JupyterServer

    load_before = os.getloadavg()
    model = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve-model",
            f"--chunk-delay={args.chunk_delay}",
            f"--tokens={args.tokens}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        model_url = model.stdout.readline().strip()
        if not model_url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the scripted model did not start")
        config = {
            "JupyterAgent": {"request_timeout": 60.0, "chunk_timeout": 60.0},
            "YDocExtension": {"document_cleanup_delay": 3600},
        }
        with JupyterServer(llm_base_url=model_url, config=config) as srv:
            (srv.root / NOTEBOOK).write_text(notebook_json())
            deadline = time.time() + 120
            while not srv.api("GET", "api/agent/health")["llm_ready"]:
                if time.time() > deadline:
                    raise RuntimeError("the agent's model client did not get ready in 120 s")
                time.sleep(0.1)
            return run(args, srv, load_before, model.pid)
    finally:
        model.stdin.close()
        model.wait(10)


def run(args: argparse.Namespace, srv: Any, load_before: tuple[float, ...], model_pid: int) -> int:
    workers = max(1, args.workers)
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    events = {name: ctx.Event() for name in ("create", "setup", "go", "edits_done")}
    events["start"] = ctx.Value("d", 0.0)
    events["last_edit"] = ctx.Value("i", 0)
    plans = [
        Plan(
            index=i,
            port=srv.port,
            token=srv.token,
            sessions=s,
            rest_clients=r,
            collaborators=c,
            editor=i == 0,
            turn_every=args.turn_every,
            rest_every=args.rest_every,
            edit_every=args.edit_every,
            seconds=args.seconds,
            soak=args.soak,
        )
        for i, (s, r, c) in enumerate(
            zip(
                split(args.sessions, workers),
                split(args.rest_clients, workers),
                split(args.collaborators, workers),
                strict=True,
            )
        )
    ]
    procs = [ctx.Process(target=worker_main, args=(p, events, report), daemon=True) for p in plans]
    for p in procs:
        p.start()
    pid = srv.proc.pid
    monitor = Monitor(pid)
    try:
        wait_for(report, "warm", 1, procs, 300)
        time.sleep(2.0)
        baseline = monitor.sample()
        events["create"].set()
        wait_for(report, "idle", workers, procs, 60 + args.sessions * 0.5)
        time.sleep(3.0)
        idle = monitor.sample()
        events["setup"].set()
        wait_for(report, "ready", workers, procs, 120)
        ready_rss = monitor.sample()
        events["start"].value = time.time() + 1.0
        events["go"].set()
        start = events["start"].value
        measure_end, end = start + args.seconds, start + args.seconds + args.soak
        time.sleep(max(0.0, start - time.time()))
        cpu0, t0 = cpu_seconds(pid), time.time()
        client_cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        model_cpu0 = cpu_seconds(model_pid)
        cpu_measure = client_measure = model_measure = None
        every = min(5.0, max(0.5, args.soak / 20))  # RSS samples: 20 or more over the soak
        while time.time() < end:
            time.sleep(min(every, max(0.05, end - time.time())))
            monitor.sample()
            if cpu_measure is None and time.time() >= measure_end:
                span = time.time() - t0
                cpu_measure = (cpu_seconds(pid) - cpu0) / span
                client_measure = (sum(cpu_seconds(p.pid) for p in procs) - client_cpu0) / span
                model_measure = (cpu_seconds(model_pid) - model_cpu0) / span
        results = wait_for(report, "result", workers, procs, 180)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    log_errors = [
        line
        for line in srv.log_path.read_text(errors="replace").splitlines()
        if line.startswith(("[E", "[C"))
    ]
    return summarise(
        args,
        list(results.values()),
        monitor,
        start,
        measure_end,
        dict(baseline=baseline, idle=idle, ready=ready_rss),
        dict(server=cpu_measure, clients=client_measure, model=model_measure),
        log_errors,
        load_before,
    )


def summarise(
    args: argparse.Namespace,
    results: list[Results],
    monitor: Monitor,
    start: float,
    measure_end: float,
    rss: dict[str, float],
    cpu: dict[str, float | None],
    log_errors: list[str],
    load_before: tuple[float, ...],
) -> int:
    errors: Counter = Counter()
    examples: list[str] = []
    for r in results:
        errors.update(r.errors)
        examples += r.examples
    if log_errors:
        errors["server_log_errors"] += len(log_errors)
        examples += log_errors[:3]

    def window(t: float) -> bool:
        return start <= t <= measure_end

    tokens = [ms for r in results for t, ms in r.tokens if window(t)]
    rest = [(name, ms) for r in results for t, name, ms in r.rest if window(t)]
    turns = sum(1 for r in results for t in r.turns if window(t))
    unstamped = sum(r.unstamped for r in results)
    edits = {k: t for r in results for k, t in r.edits.items()}
    seen = {(who, k): t for r in results for who, k, t in r.seen}
    watchers = sorted({who for who, _ in seen})
    propagation = [
        (seen[who, k] - t0) * 1000
        for k, t0 in edits.items()
        if window(t0)
        for who in watchers
        if (who, k) in seen
    ]
    missed = [(who, k) for k, t0 in edits.items() for who in watchers if (who, k) not in seen and k > 0]
    if missed:
        errors["collaborator_missed_edit"] += len(missed)
    if len(watchers) < args.collaborators:
        errors["collaborator_not_synced"] += args.collaborators - len(watchers)
    lag = [ms for r in results for ms in r.lag]
    total = sum(errors.values())

    span = measure_end - start
    print(
        f"load benchmark: {args.sessions} chat sessions (a prompt every {args.turn_every:g} s each, "
        f"{args.tokens} pieces {args.chunk_delay * 1000:g} ms apart), {args.rest_clients} REST clients "
        f"(a request every {args.rest_every:g} s each), {args.collaborators} collaborators on one notebook "
        f"(an agent edit every {args.edit_every:g} s); measured {span:.0f} s, soak {args.soak:.0f} s"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average before {load_before[0]:.2f}; clients: {args.workers} "
        "worker processes (asyncio, connections bounded: 25 connects at a time, one keep-alive pool each); "
        "model: scripted LLM in its own process; server: one jupyter_server process"
    )
    print(f"errors: {total}" + (f"  {dict(errors)}" if total else ""))
    for line in examples[:8]:
        print(f"  e.g. {line}")
    print(
        f"throughput: {turns / span:.1f} turns/s, {len(tokens) / span:.0f} token frames/s, "
        f"{len(rest) / span:.0f} REST requests/s"
    )
    print(f"definition: {TOKEN_DEFINITION}")
    print(row("token delivery", tokens) + (f"  ({unstamped} unstamped)" if unstamped else ""))
    print(row("REST (all)", [ms for _, ms in rest]))
    for name in ("session", "events", "health", "list", "tools"):
        print(row(f"  REST {name}", [ms for n, ms in rest if n == name]))
    print(f"definition: {PROPAGATION_DEFINITION}")
    print(row(f"edit propagation ({len(watchers)} collaborators)", propagation))
    per_session = (rss["idle"] - rss["baseline"]) / max(1, args.sessions)
    print(
        f"memory: server RSS {rss['baseline']:.0f} MiB after warm-up, {rss['idle']:.0f} MiB with "
        f"{args.sessions} idle sessions (each created and its WebSocket open) = {per_session:.3f} MiB per idle "
        f"session; {rss['ready']:.0f} MiB with collaborators and REST clients connected"
    )
    server_cpu = cpu["server"] or float("nan")
    per_turn = server_cpu * span / turns * 1000 if turns else float("nan")
    print(
        f"cpu: server {server_cpu:.2f} cores during the measured load (= {per_turn:.1f} ms of server CPU per "
        f"turn, REST and collaboration included); client workers {cpu['clients'] or float('nan'):.2f} cores; "
        f"model {cpu['model'] or float('nan'):.2f} cores"
    )
    soak = [(t - start, m) for t, m in monitor.samples if t > measure_end]
    if soak and args.soak > 0:
        print(
            f"soak: RSS slope {slope_per_minute(soak):+.2f} MiB/min over {args.soak:.0f} s ({len(soak)} samples, "
            f"{soak[0][1]:.0f} -> {soak[-1][1]:.0f} MiB, max {max(m for _, m in soak):.0f} MiB)"
        )
    else:
        print("soak: skipped (--soak 0)")
    print(
        f"client side: event-loop lag p50 {pct(lag, 50):.1f} ms, p99 {pct(lag, 99):.1f} ms, max "
        f"{max(lag, default=float('nan')):.1f} ms (a late client loop inflates every latency above)"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
