"""Fuzz every REST body and WebSocket frame of the agent: N Hypothesis cases against a real server.

Starts Jupyter with the agent in a subprocess on the scripted model (which answers every prompt at once), puts a
sentinel directory next to the server's root (with symlinks to it in the root), then sends the cases of
:mod:`tests.fuzz_strategies` one at a time and checks each as tests/test_fuzz.py does (see :mod:`tests.fuzz_kit`):
no 5xx without a JSON code and message, an error frame for every bad frame, sockets that stay open, turns that
end, health after every case, nothing outside the root changed. Every case runs (a violation is recorded, not
raised), so one run reports every distinct failure; prints counts per route and frame type, the answers seen,
the violations with an example each, the server's logged tracebacks and the wall time. Exits 1 on any violation.

    .venv/bin/python benchmarks/fuzz.py --cases 10000 [--seed 1234]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import ScriptedLLM
from tests.fuzz_kit import FuzzRunner, Snapshot, Target, Violation, fuzz_model, prepare_sandbox
from tests.fuzz_strategies import cases

#: What the server itself keeps next to its root (JupyterServer's layout): it may change, the rest may not.
SERVER_STATE = (
    "agent.db",
    "ystore.db",
    "fileid.db",
    "backups",
    "server.log",
    "collaboration",
    "data",
    "runtime",
)
CONFIG = {
    "JupyterAgent": {
        "retry_backoff": 0.01,
        "request_timeout": 10.0,
        "chunk_timeout": 5.0,
        "approval_timeout": 30.0,
        "cell_timeout": 30.0,
    }
}


class Tally:
    """What the run saw: cases per route, frames per kind, answers, and violations (first example of each)."""

    def __init__(self) -> None:
        self.routes: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.examples: dict[str, tuple[str, Any]] = {}

    def record(self, route: str, case: Any, run: Any) -> None:
        self.routes[route] += 1
        try:
            outcome = run()
        except Exception as err:  # a Violation, or the server gone (a refused connection, a closed stream)
            message = str(err) if isinstance(err, Violation) else f"{type(err).__name__}: {err}"
            key = f"{route}: {_shape(message)}"
            self.violations[key] += 1
            self.examples.setdefault(key, (message, case))
            return
        self.kinds.update(outcome.kinds)
        self.answers.update(f"{route} -> {a}" if a.isdigit() else a for a in outcome.answers)


def _shape(message: str) -> str:
    """A violation's message without its details, so that one bug counts once."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "…", message)[:160]


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def fuzz(n: int, run_seed: int, browser_input: bool = False) -> tuple[Tally, str, float]:
    tally = Tally()
    loop = asyncio.new_event_loop()
    with ScriptedLLM() as llm:
        llm.default = fuzz_model
        with JupyterServer(llm_base_url=llm.base_url, config=CONFIG) as srv:
            root = Path(os.path.realpath(srv.root))
            prepare_sandbox(root)
            target = Target(
                url=f"http://127.0.0.1:{srv.port}/",
                headers={"Authorization": f"token {srv.token}"},
                root=root,
                backup_dir=srv.base / "backups",
                snapshot=Snapshot(root.parent, root.parent / "outside", state=SERVER_STATE),
            )
            runner = loop.run_until_complete(_runner(target))

            @seed(run_seed)
            @settings(
                max_examples=n,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases(browser_input))
            def one(case: Any) -> None:
                tally.record(case.route, case, lambda: loop.run_until_complete(runner.run(case)))

            started = time.perf_counter()
            one()
            elapsed = time.perf_counter() - started
            log = srv.log_path.read_text(errors="replace")
    loop.close()
    return tally, log, elapsed


async def _runner(target: Target) -> FuzzRunner:
    return FuzzRunner(target)  # built on the loop that runs the cases (its HTTP client belongs to it)


def _exception_lines(log: str) -> list[str]:
    """The exception line (``Type: message``) that ends each traceback in a log."""
    out = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = block.splitlines()[1:]
        body = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), len(lines))
        indented = [line.strip() for line in lines[:body] if line.strip()]
        if indented and indented[-1].startswith(("The above exception", "During handling")):
            continue  # a chained exception's cause: the chain's last traceback names what failed
        out.append(indented[-1] if indented else "?")
    return out


def report(tally: Tally, log: str, elapsed: float, run_seed: int) -> None:
    total = sum(tally.routes.values())
    print(f"{total} cases in {elapsed:.0f} s ({total / elapsed:.1f} cases/s), seed {run_seed}")
    print("\nCases per route:")
    for route, count in sorted(tally.routes.items()):
        print(f"  {route:<40} {count:6d}")
    print("\nWebSocket frames per kind:")
    for kind, count in sorted(tally.kinds.items()):
        print(f"  {kind:<40} {count:6d}")
    print("\nAnswers (HTTP status per route, error codes of frame answers, ok = no error frame):")
    for answer, count in sorted(tally.answers.items()):
        print(f"  {answer:<60} {count:6d}")
    tracebacks = Counter(_exception_lines(log))
    print(f"\nTracebacks in the server's log: {sum(tracebacks.values())}")
    for line, count in tracebacks.most_common(15):
        print(f"  {count:5d}  {line[:200]}")
    print(f"\nViolations: {sum(tally.violations.values())}")
    for key, count in tally.violations.most_common():
        message, case = tally.examples[key]
        print(f"  {count:5d}  {_short(message, 400)}\n         example: {_short(case)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="Hypothesis examples to run")
    parser.add_argument(
        "--seed", type=int, default=None, help="the run's seed (default: a random one, printed)"
    )
    parser.add_argument(
        "--server-log", type=Path, default=None, help="also keep the server's log in this file"
    )
    parser.add_argument(
        "--browser-input",
        action="store_true",
        help="let browser input frames follow a take of control (performed in a real Chromium: slower)",
    )
    args = parser.parse_args(argv)
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    tally, log, elapsed = fuzz(args.cases, run_seed, args.browser_input)
    report(tally, log, elapsed, run_seed)
    if args.server_log is not None:
        args.server_log.write_text(log)
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
