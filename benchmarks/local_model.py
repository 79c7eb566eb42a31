"""Ten small agent tasks end-to-end on the embedded local model.

Starts a Jupyter server with the agent and no configured model (so it runs the local model), gives each task a
fresh session, and checks the result in the workspace (a cell's output, a file, the answer's text). Prints
per task: success, model calls, time to first token of each call (from the ``usage`` events) and decode
speed, then totals. The assembled GGUF is kept in ``<jupyter data dir>/agent/models`` between runs.

    python benchmarks/local_model.py                        # the default model (qwen2.5-coder-1.5b)
    python benchmarks/local_model.py --model qwen2.5-coder-0.5b --tasks 3
    python benchmarks/local_model.py --speed                # decode rates and a fresh process's first token

``--speed`` measures the model server alone: the decode rate of plain text and of a schema-constrained answer
(the agent's ``response_format``), as llama.cpp's server reports them, and the first token of a fresh Python
process running one agent step through litellm in three situations: no model server running and no saved
prompt state (what every fresh process paid before), no server but the prompt state saved, and a model server
already running (shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat
from jupyter_core.paths import jupyter_data_dir
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.testing.jupyter import JupyterServer

Check = Callable[[Path, str], bool]


def outputs_of(root: Path, name: str = "work.ipynb") -> str:
    """Every code cell's output text in the notebook on disk, joined."""
    path = root / name
    if not path.exists():
        return ""
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(str(out.get("text", "")))
            texts.append(str((out.get("data") or {}).get("text/plain", "")))
    return "\n".join(texts)


def cells_of(root: Path, name: str = "work.ipynb") -> list[Any]:
    path = root / name
    return nbformat.read(path, as_version=4).cells if path.exists() else []


@dataclass
class Task:
    name: str
    prompt: str
    check: Check  # (workspace root, final answer text) -> success


TASKS = [
    Task(
        "sum-cell",
        "In work.ipynb, insert a code cell that prints the sum of the numbers 1 to 100, then run it.",
        lambda root, answer: "5050" in outputs_of(root),
    ),
    Task(
        "power-cell",
        "In work.ipynb, add a code cell computing 2 ** 20 and printing it, and run the cell.",
        lambda root, answer: "1048576" in outputs_of(root),
    ),
    Task(
        "csv-columns",
        "Read the file data.csv and tell me the names of its columns.",
        lambda root, answer: all(c in answer.lower() for c in ("name", "age", "city")),
    ),
    Task(
        "fix-cell",
        "The cell in broken.ipynb fails. Read the notebook, fix the cell so it prints 42, and run it.",
        lambda root, answer: "42" in outputs_of(root, "broken.ipynb"),
    ),
    Task(
        "reverse-fn",
        "In work.ipynb, write a function that reverses a string, call it on 'abc' and print the result; run it.",
        lambda root, answer: "cba" in outputs_of(root),
    ),
    Task(
        "list-files",
        "Which files are in the workspace? List them.",
        lambda root, answer: "data.csv" in answer,
    ),
    Task(
        "write-file",
        "Create a text file hello.txt containing exactly: hello world",
        lambda root, answer: (
            (root / "hello.txt").exists() and "hello world" in (root / "hello.txt").read_text().lower()
        ),
    ),
    Task(
        "count-lines",
        "How many lines does notes.txt have? Read it and answer with the number.",
        lambda root, answer: "7" in answer,
    ),
    Task(
        "csv-mean",
        "In work.ipynb, add and run a code cell that reads data.csv with the csv module and prints the mean "
        "of the age column.",
        lambda root, answer: "35" in outputs_of(root),
    ),
    Task(
        "markdown-title",
        "Add a markdown cell with the title '# Analysis' to work.ipynb.",
        lambda root, answer: any(
            c.cell_type == "markdown" and "Analysis" in c.source for c in cells_of(root, "work.ipynb")
        ),
    ),
]


def prepare(root: Path) -> None:
    """A fresh workspace for one task."""
    for path in root.iterdir():
        if path.is_file():
            path.unlink()
    (root / "data.csv").write_text("name,age,city\nAda,36,London\nAlan,41,Wilmslow\nGrace,28,New York\n")
    (root / "notes.txt").write_text("".join(f"line {i}\n" for i in range(1, 8)))
    nbformat.write(nbformat.v4.new_notebook(), root / "work.ipynb")
    broken = nbformat.v4.new_notebook()
    broken.cells.append(nbformat.v4.new_code_cell("print(answer)"))
    nbformat.write(broken, root / "broken.ipynb")


async def run_task(srv: JupyterServer, task: Task, timeout: float) -> dict[str, Any]:
    prepare(srv.root)
    session = srv.api("POST", "api/agent/sessions", {"title": task.name})["id"]
    url = f"ws://127.0.0.1:{srv.port}/api/agent/sessions/{session}/ws"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {srv.token}"}))
    assert json.loads(await conn.read_message())["type"] == "hello"
    started = time.perf_counter()
    await conn.write_message(json.dumps({"type": "prompt", "text": task.prompt}))
    frames: list[dict[str, Any]] = []
    first_token: float | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await conn.read_message()
                if message is None:
                    break
                frame = json.loads(message)
                frames.append(frame)
                if frame["type"] == "token" and first_token is None:
                    first_token = time.perf_counter() - started
                if frame["type"] == "approval_request":  # shell_run asks: approve, as a person would here
                    await conn.write_message(
                        json.dumps({"type": "approve", "call_id": frame["call_id"], "decision": "once"})
                    )
                if frame["type"] in ("done", "error"):
                    break
    except TimeoutError:
        frames.append({"type": "error", "message": f"timed out after {timeout:g} s"})
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let the notebook reach the disk (the collaboration save delay)
    answer = "".join(f["text"] for f in frames if f["type"] == "token")
    usage = [f for f in frames if f["type"] == "usage"]
    calls = [f["name"] for f in frames if f["type"] == "tool_call"]
    end = frames[-1] if frames else {"type": "error", "message": "no frames"}
    try:
        ok = end["type"] == "done" and task.check(srv.root, answer)
    except Exception:
        ok = False
    speeds = [
        u["completion_tokens"] / ((u["latency_ms"] - (u["ttft_ms"] or 0)) / 1000)
        for u in usage
        if u.get("completion_tokens") and u["latency_ms"] > (u["ttft_ms"] or 0)
    ]
    return {
        "task": task.name,
        "ok": ok,
        "end": end["type"] if end["type"] == "error" else f"done/{end.get('reason')}",
        "error": end.get("message"),
        "seconds": elapsed,
        "model_calls": len(usage),
        "tool_calls": calls,
        "ttft_ms": [u["ttft_ms"] for u in usage if u.get("ttft_ms") is not None],
        "completion_tokens": sum(u.get("completion_tokens", 0) for u in usage),
        "tokens_per_s": statistics.median(speeds) if speeds else None,
        "first_answer_token_s": first_token,
        "answer": answer[:200],
    }


def wait_ready(srv: JupyterServer, timeout: float) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while True:
        health = srv.api("GET", "api/agent/health")
        local = health.get("local_model") or {}
        if local.get("state") in ("ready", "failed", "not_installed") or time.perf_counter() > deadline:
            return health
        time.sleep(0.5)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "notebook_insert_cell",
            "description": "Insert a new cell into a notebook. Returns its id.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "source": {"type": "string"},
                    "cell_type": {"type": "string", "enum": ["code", "markdown"]},
                },
                "required": ["path", "source"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "file_read",
            "description": "Read a text file in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
]

#: A fresh process: one agent step (the local adapter's real prompt and schema, through litellm) on the shared
#: model server; prints when it started, when the request went out and when the first token came.
FRESH = """
import time
started = time.time()
import asyncio, json, os, sys
from pathlib import Path
from jupyter_agent.engine.llm import LLMClient, StreamHandlers
from jupyter_agent.local_model.server import configure
TOOLS = json.loads(sys.argv[3])
llm = LLMClient(model="", retries=0, request_timeout=600)
server = configure(llm, sys.argv[1], Path(sys.argv[2]))
marks = {"started": started}
def token(text):  # the first character of the answer the user sees
    marks.setdefault("first_token", time.time())
from jupyter_agent.local_model.adapter import LocalCall
on_chunk = LocalCall.on_chunk
def first_chunk(call, chunk):  # the model's first token (the answer's JSON starts)
    marks.setdefault("first_chunk", time.time())
    on_chunk(call, chunk)
LocalCall.on_chunk = first_chunk
async def main():
    await asyncio.wrap_future(server.start())
    marks["ready"] = time.time()
    await llm.stream([{"role": "user", "content": "Say hello."}], TOOLS, StreamHandlers(on_token=token),
                     tool_choice="none", max_tokens=48)
    marks["done"] = time.time()
asyncio.run(main())
marks["shared"] = server.shared
server.stop()
print(json.dumps(marks))
"""


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=900) as response:
        return json.load(response)


def decode_rates(url: str, tokens: int, runs: int) -> tuple[list[float], list[float]]:
    """Plain and constrained decode rates (tokens/s, from the server's timings) for the same kind of answer."""
    from jupyter_agent.local_model.adapter import response_schema

    ask = "Explain in detail, in three paragraphs, what a Python decorator is and when to use one."
    plain, constrained = [], []
    for run in range(runs):
        messages = [{"role": "user", "content": f"{ask} (take {run})"}]
        body = {"messages": messages, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
        plain.append(_post(f"{url}/chat/completions", body)["timings"]["predicted_per_second"])
        schema = {"anyOf": [b for b in response_schema(TOOLS)["anyOf"] if "final_answer" in json.dumps(b)]}
        body = {**body, "response_format": {"type": "json_object", "schema": schema}}
        body.pop("ignore_eos")  # the schema ends the answer; a long text keeps it going
        messages[0]["content"] += " Answer with final_answer."
        constrained.append(_post(f"{url}/chat/completions", body)["timings"]["predicted_per_second"])
    return plain, constrained


def fresh_process(model: str, models: Path, env: dict[str, str]) -> dict[str, Any]:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", FRESH, model, str(models), json.dumps(TOOLS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    marks = json.loads(out.strip().splitlines()[-1])
    return {
        "shared": marks["shared"],
        "process_to_first_token_s": round(marks["first_token"] - marks["started"], 2),
        "request_to_first_token_s": round(marks["first_token"] - marks["ready"], 2),
        "server_ready_s": round(marks["ready"] - marks["started"], 2),
        "request_to_first_model_token_s": round(marks["first_chunk"] - marks["ready"], 2),
    }


def measure_speed(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from jupyter_agent.local_model.registry import get_spec
    from jupyter_agent.local_model.server import LocalModelServer

    models = Path(jupyter_data_dir()) / "agent" / "models"  # keep the assembled GGUF between runs
    runtime = Path(tempfile.mkdtemp(prefix="agent-bench-runtime-"))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_DATA_DIR": str(models.parent.parent)}
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    spec = get_spec(args.model)
    server = LocalModelServer(spec, models, runtime_dir=runtime)
    if not server.available:
        sys.exit(f"cannot run: {server.error}")
    server.start().result()
    print(f"model {args.model} on {server.runtime}, {server.threads} threads")
    plain, constrained = decode_rates(server.url, args.speed_tokens, args.speed_runs)
    ratio = statistics.median(constrained) / statistics.median(plain)
    print(
        f"decode: plain {statistics.median(plain):.1f} tok/s {[round(x, 1) for x in plain]}, constrained "
        f"{statistics.median(constrained):.1f} tok/s {[round(x, 1) for x in constrained]} ({ratio:.0%} of plain)"
    )
    server.stop()

    results = {}
    shutil.rmtree(models / "slots", ignore_errors=True)  # nothing saved: as before
    results["cold (no server, nothing saved)"] = fresh_process(args.model, models, env)
    results["fresh server, saved prompt state"] = fresh_process(args.model, models, env)
    keeper = LocalModelServer(spec, models, runtime_dir=runtime)  # another client keeps a server running
    keeper.start().result()
    try:
        fresh_process(args.model, models, env)  # its first client's step puts the prompt in its cache
        results["shared server already running"] = fresh_process(args.model, models, env)
    finally:
        keeper.stop()
    for name, result in results.items():
        print(
            f"fresh process, {name}: first token {result['process_to_first_token_s']:.2f} s after the process "
            f"started, {result['request_to_first_token_s']:.2f} s after the model server was ready "
            f"(its first token after {result['request_to_first_model_token_s']:.2f} s; ready after "
            f"{result['server_ready_s']:.2f} s, shared={result['shared']})"
        )
    shutil.rmtree(runtime, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"model": args.model, "plain": plain, "constrained": constrained, "fresh": results})
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="registry name of the local model")
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="run the first N tasks")
    parser.add_argument("--only", default="", help="comma-separated task names")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per task")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--speed", action="store_true", help="measure decode rates and fresh-process start")
    parser.add_argument("--speed-tokens", type=int, default=96, help="tokens per decode measurement")
    parser.add_argument("--speed-runs", type=int, default=2, help="decode measurements of each kind")
    args = parser.parse_args()
    if args.speed:
        measure_speed(args)
        return
    tasks = [t for t in TASKS if t.name in args.only.split(",")] if args.only else TASKS[: args.tasks]
    config = {
        "JupyterAgent": {
            "model": "",
            "local_model": args.model,
            "max_steps": args.max_steps,
            "tool_policy": {"shell_run": "allow"},
            "request_timeout": 600.0,
            "chunk_timeout": 300.0,
        }
    }
    srv = JupyterServer(config=config, stop_timeout=30)
    models = Path(jupyter_data_dir()) / "agent" / "models"  # keep the assembled GGUF between runs
    models.mkdir(parents=True, exist_ok=True)
    (srv.base / "data" / "agent").mkdir(parents=True)
    (srv.base / "data" / "agent" / "models").symlink_to(models)
    with srv:
        started = time.perf_counter()
        health = wait_ready(srv, 900)
        local = health.get("local_model") or {}
        print(f"model {local.get('name')}: {local.get('state')} after {time.perf_counter() - started:.1f} s")
        if local.get("state") != "ready":
            print(f"cannot run: {local.get('error')}")
            sys.exit(1)
        results = []
        for task in tasks:
            result = await run_task(srv, task, args.timeout)
            results.append(result)
            ttft = ", ".join(f"{t / 1000:.1f}" for t in result["ttft_ms"])
            speed = f"{result['tokens_per_s']:.1f}" if result["tokens_per_s"] else "-"
            print(
                f"{'PASS' if result['ok'] else 'FAIL'} {task.name:<15} {result['seconds']:6.1f} s  "
                f"{result['end']:<16} calls={result['model_calls']} ttft_s=[{ttft}] tok/s={speed} "
                f"tools={result['tool_calls']}" + (f" error={result['error']}" if result["error"] else ""),
                flush=True,
            )
        ok = sum(r["ok"] for r in results)
        ttfts = [t for r in results for t in r["ttft_ms"]]
        speeds = [r["tokens_per_s"] for r in results if r["tokens_per_s"]]
        print(f"\n{ok}/{len(results)} tasks succeeded on {args.model}")
        if ttfts:
            print(
                f"time to first token per model call: median {statistics.median(ttfts) / 1000:.2f} s, "
                f"max {max(ttfts) / 1000:.2f} s (n={len(ttfts)})"
            )
        if speeds:
            print(f"decode speed: median {statistics.median(speeds):.1f} tokens/s")
        if args.json:
            Path(args.json).write_text(json.dumps({"model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
