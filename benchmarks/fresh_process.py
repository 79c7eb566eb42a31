"""What a fresh process pays before the agent answers: the CLI, a new kernel, and the modules they load.

Against the scripted model (no delay) over real HTTP, on isolated Jupyter directories, it prints p50/p90 of:
- ``jupyter agent run`` of an insert-and-run turn, end to end (process start to exit);
- ``%%agent`` in a fresh kernel, sent ``--delay`` seconds after ``%load_ext jupyter_agent`` (which starts the
  warm-up), from the execute request to the first token on the cell's output;
- and once: the modules a CLI command and an engine built for the kernel import (total, and whether
  tornado, jupyter_server, pycrdt or Playwright are among them).

    python benchmarks/fresh_process.py --n 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_client.manager import start_new_kernel

from jupyter_agent.testing.jupyter import agent_environment
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec

HEAVY = ("tornado", "jupyter_server", "pycrdt", "playwright", "litellm", "jsonschema")

#: Prints the modules an engine for the kernel loads (built, not used), as JSON.
ENGINE_MODULES = """
import json, os, sys
from jupyter_agent.runtime import build_runtime
from jupyter_agent.tools.python import PYTHON_TOOLS
agent = build_runtime(os.getcwd(), tools=PYTHON_TOOLS)
print(json.dumps(sorted(sys.modules)))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return f"{name:<58} p50 {pct(values, 50):7.2f} s   p90 {pct(values, 90):7.2f} s   (n={len(values)})"


def cli_turn(llm: ScriptedLLM, base: Path, env: dict[str, str], index: int) -> float:
    """Seconds for ``jupyter agent run`` to insert a cell, run it, and exit."""
    notebook = f"run{index}.ipynb"

    def run_inserted(body: dict) -> Reply:
        text = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "tool")
        cell_id = text.split("cell ", 1)[1].split()[0]
        return Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": notebook, "cell_id": cell_id})])

    llm.script(
        Reply(
            tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": notebook, "source": "print(6 * 7)"})]
        ),
        run_inserted,
        Reply(text="It printed 42."),
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_agent.cli", "run", "print 6*7", "--notebook", notebook, "--yes"],
        env=env,
        cwd=base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "42" not in (base / notebook).read_text():
        raise RuntimeError(f"the CLI turn failed: {done.stderr[-2000:]}")
    return elapsed


def kernel_first_token(llm: ScriptedLLM, base: Path, env: dict[str, str], delay: float) -> float:
    """Seconds from sending a ``%%agent`` cell to its first streamed token, in a kernel started just now."""
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(base), startup_timeout=60)
    try:
        kc.execute_interactive("%load_ext jupyter_agent", timeout=60, output_hook=lambda msg: None)
        time.sleep(delay)  # the person reads the notebook meanwhile; the warm-up runs
        llm.script(Reply(text="Hello from the agent"))
        first: list[float] = []

        def hook(msg: dict) -> None:
            content = msg.get("content", {})
            shown = json.dumps(content.get("data", {})) + str(content.get("text", ""))
            if not first and "Hello" in shown:
                first.append(time.perf_counter())

        started = time.perf_counter()
        reply = kc.execute_interactive("%%agent\nsay hello", timeout=120, output_hook=hook)
        if reply["content"]["status"] != "ok" or not first:
            raise RuntimeError(f"the %%agent cell failed: {reply['content']}")
        return first[0] - started
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def modules(code: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, *code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def module_report(name: str, loaded: list[str]) -> str:
    tops = {m.split(".")[0] for m in loaded}
    heavy = ", ".join(h for h in HEAVY if h in tops) or "none"
    return f"{name:<58} {len(loaded):5d} modules; of {', '.join(HEAVY)}: {heavy}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds between %%load_ext and %%agent")
    args = parser.parse_args()
    llm = ScriptedLLM().start()
    with tempfile.TemporaryDirectory(prefix="fresh-process-") as folder:
        base = Path(folder)
        env = agent_environment(base, llm.base_url)
        cli = [cli_turn(llm, base, env, i) for i in range(args.n)]
        kernel = [kernel_first_token(llm, base, env, args.delay) for _ in range(args.n)]
        print(row("jupyter agent run, insert-and-run turn, end to end", cli))
        print(row(f"%%agent in a fresh kernel ({args.delay:g} s after %load_ext): first token", kernel))
        dump = (
            "import json, sys; from jupyter_agent.cli import AgentApp; print(json.dumps(sorted(sys.modules)))"
        )
        print(module_report("jupyter agent (the CLI's imports)", modules(["-c", dump], env, base)))
        print(module_report("an engine built for a kernel", modules(["-c", ENGINE_MODULES], env, base)))
    llm.stop()


if __name__ == "__main__":
    main()
