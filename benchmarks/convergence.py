"""Convergence under faults: N seeded scenarios of people and the agent editing one notebook while the harness
drops connections, frees rooms, restarts the server, kills kernels, races saves and rewrites the file (see
:mod:`tests.convergence_kit`). Each scenario ends with every client, the server's document and the file on disk
compared, and every edit nobody deleted looked for exactly once.

Prints progress, each failure with its seed and the command that replays it, and ends with ``lost edits: <n>``
and ``divergent: <n>`` (scenarios with a lost edit / with differing views); exits 1 unless both are 0.

    .venv/bin/python benchmarks/convergence.py --seeds 10000 [--start 0] [--max-minutes 25]
    .venv/bin/python benchmarks/convergence.py --seed 1234          # replay one scenario, with its step log

Scenarios run one at a time (``--parallel N`` runs N at once; see tests/convergence_kit.py for why that
currently fails on jupyter-collaboration's SQLite store). A replay repeats the seed's plan; the interleaving
with the server is real concurrency, so a rare failure may need a few replays.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.convergence_kit import Cluster, Outcome, run_seeds


async def run(seeds: list[int], parallel: int, max_minutes: float | None, verbose: bool) -> int:
    lost = divergent = done = 0
    faults: Counter = Counter()
    timings: Counter = Counter()
    started = time.perf_counter()

    def report(outcome: Outcome, log: list[str]) -> None:
        nonlocal lost, divergent, done
        done += 1
        faults.update(outcome.faults)
        timings.update(outcome.timings)
        lost += bool(outcome.lost)
        divergent += bool(outcome.divergent)
        if not outcome.ok or verbose:
            print(f"\nseed {outcome.seed}: {'ok' if outcome.ok else 'FAILED'} ({outcome.seconds:.1f} s)")
            for line in outcome.lost:
                print(f"  lost: {line}")
            for line in outcome.divergent:
                print(f"  divergent: {line}")
            for line in outcome.notes:
                print(f"  note: {line}")
            print("  steps:\n    " + "\n    ".join(log))
            print(f"  replay: .venv/bin/python benchmarks/convergence.py --seed {outcome.seed}", flush=True)
        if done % 25 == 0:
            rate = done / (time.perf_counter() - started)
            print(
                f"[{done}/{len(seeds)}] {rate:.2f} seeds/s, lost {lost}, divergent {divergent}, "
                f"faults {dict(sorted(faults.items()))}",
                flush=True,
            )

    with Cluster() as cluster:
        print(f"server up in {cluster.server.start_seconds:.1f} s; running {len(seeds)} seeds", flush=True)
        deadline = None if max_minutes is None else started + 60 * max_minutes
        await run_seeds(cluster, seeds, parallel, report, deadline)
    elapsed = time.perf_counter() - started
    print(f"\n{done} seeds in {elapsed:.0f} s ({done / elapsed:.3f} seeds/s), {parallel} at a time")
    print(f"faults injected: {dict(sorted(faults.items()))}")
    print("seconds per kind of step: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.most_common()))
    print(f"lost edits: {lost}")
    print(f"divergent: {divergent}")
    return 1 if lost or divergent else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many scenarios to run")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed, printing its steps")
    parser.add_argument("--parallel", type=int, default=1, help="scenarios at a time (each its own notebook)")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new seed after this long (and report those run)",
    )
    args = parser.parse_args()
    seeds = [args.seed] if args.seed is not None else list(range(args.start, args.start + args.seeds))
    sys.exit(asyncio.run(run(seeds, args.parallel, args.max_minutes, verbose=args.seed is not None)))


if __name__ == "__main__":
    main()
