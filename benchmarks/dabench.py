"""DABench data-analysis questions, each answered by the agent headless, graded by the dataset's own rule.

Every question runs as ``jupyter agent run PROMPT --notebook q.ipynb --yes`` (the product's headless path) in
a fresh folder holding only its CSV, with Jupyter data and config directories of its own, so no question sees
another's notebook, session or settings. The prompt gives the question, its constraints, the required answer
format and the file's name; the final answer is graded with ``@(\\w+)\\[(.*?)\\]`` as the dataset's README
says (see ``dabench_grading.py``). Printed: each question as it ends, then accuracy by question and by
sub-answer per level, seconds and tokens (from the run's ``usage`` events) per question, errors and timeouts.
Every transcript (prompt, events, final answer, grade) and notebook is written to ``--out``.

    python benchmarks/dabench.py --sample 10,5,5            # the embedded model (no model configured)
    python benchmarks/dabench.py --model openai/gpt-4o-mini --level easy --parallel 4
    python benchmarks/dabench.py --ids 0,5,24 --out /tmp/dab

With no ``--model`` the run uses the embedded model, as ``make lab`` does with nothing configured; the
benchmark holds its model server for the whole run so each question's process joins it instead of loading
the model again. The questions are read from ``--data`` (default ``../shared/dabench`` next to the repo),
never copied into it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dabench_grading import Grade, grade

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "dabench"
LEVELS = ("easy", "medium", "hard")
NOTEBOOK = "q.ipynb"
GRACE = 60.0  # seconds past the turn's own time limit before the run's process is killed
MAX_RESULT_SHOWN = 4000  # characters of a tool result in the markdown transcript (the JSON keeps all)

PROMPT = """Answer this question about the data in the file {file_name} (a CSV file in the workspace).

Question: {question}

Constraints: {constraints}

Required answer format: {format}

Load the file with pandas in the notebook and compute the answer with code; don't guess. \
Your final answer must fill in every field of the required format."""


@dataclass
class Question:
    id: int
    level: str
    question: str
    constraints: str
    format: str
    file_name: str
    label: list[list[str]]

    def prompt(self) -> str:
        return PROMPT.format(
            file_name=self.file_name,
            question=self.question.strip(),
            constraints=self.constraints.strip(),
            format=self.format.strip(),
        )


@dataclass
class Outcome:
    """What one question's run gave."""

    id: int
    level: str
    status: str  # ok | error | timeout
    seconds: float
    answer: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    exit_code: int | None = None
    grade: Grade | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def correct(self) -> bool:
        return self.grade is not None and self.grade.correct


# -- questions -----------------------------------------------------------------------------------------


def load_questions(data: Path) -> list[Question]:
    """The questions of ``data/questions.jsonl`` with their labels, in the file's order."""
    labels = {}
    for line in (data / "labels.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["id"]] = row["common_answers"]
    questions = []
    for line in (data / "questions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            questions.append(
                Question(
                    id=row["id"],
                    level=row["level"],
                    question=row["question"],
                    constraints=row.get("constraints") or "",
                    format=row.get("format") or "",
                    file_name=row["file_name"],
                    label=labels[row["id"]],
                )
            )
    return questions


def choose(
    questions: list[Question],
    ids: list[int] | None = None,
    level: str | None = None,
    sample: list[int] | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> list[Question]:
    """The questions to run: by id, by level, a seeded sample of so many per level (easy, medium, hard)."""
    chosen = questions
    if ids:
        known = {q.id: q for q in questions}
        missing = [i for i in ids if i not in known]
        if missing:
            raise SystemExit(f"error: no question with id {', '.join(map(str, missing))} in the data")
        chosen = [known[i] for i in ids]
    if level:
        chosen = [q for q in chosen if q.level == level]
    if sample:
        rng = random.Random(seed)
        picked = []
        for name, count in zip(LEVELS, sample, strict=False):
            pool = [q for q in chosen if q.level == name]
            picked += sorted(rng.sample(pool, min(count, len(pool))), key=lambda q: q.id)
        chosen = picked
    return chosen[:limit] if limit else chosen


# -- one question --------------------------------------------------------------------------------------


@dataclass
class Runner:
    """Runs questions as ``jupyter agent run`` processes with the chosen model."""

    data: Path
    out: Path
    model: str | None  # None: the embedded model
    local_model: str | None
    timeout: float
    runtime_dir: Path  # shared, so every run joins the one embedded model server
    models_dir: Path  # the embedded models' joined weights (in this process's data directory)

    def command(self, question: Question, jupyter: Path) -> list[str]:
        cmd = [sys.executable, "-m", "jupyter_agent.cli", "run", question.prompt(), "--notebook", NOTEBOOK]
        cmd += ["--yes", f"--JupyterAgent.turn_timeout={self.timeout:g}"]
        # The question's own store and backups, wherever the data directory is.
        cmd += [
            f"--JupyterAgent.db_path={jupyter / 'agent.db'}",
            f"--JupyterAgent.backup_dir={jupyter / 'backups'}",
        ]
        if self.model:
            cmd += ["--model", self.model]
        elif self.local_model:
            cmd.append(f"--JupyterAgent.local_model={self.local_model}")
        return cmd

    def environment(self, jupyter: Path) -> dict[str, str]:
        """This process's environment with the question's own Jupyter config (no one's settings apply) and,
        for a hosted model, data directory. The embedded model's runs keep this one's data directory, where
        its joined weights (1.1 GB) are, and its runtime directory, where they meet its one server."""
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(jupyter / "config"),
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        env.pop("JPY_SESSION_NAME", None)
        if self.model:
            env["JUPYTER_DATA_DIR"] = str(jupyter / "data")
        else:
            env.pop("JUPYTER_AGENT_MODEL", None)  # nothing configured: the embedded model, as `make lab`
        return env

    def prepare(self, question: Question, base: Path) -> tuple[Path, Path]:
        """The question's workspace (its CSV only) and its Jupyter directories."""
        work, jupyter = base / "work", base / "jupyter"
        work.mkdir(parents=True)
        shutil.copy(self.data / "tables" / question.file_name, work / question.file_name)
        (jupyter / "config").mkdir(parents=True)
        return work, jupyter

    async def run(self, question: Question) -> Outcome:
        with tempfile.TemporaryDirectory(prefix=f"dabench-{question.id}-") as tmp:
            work, jupyter = self.prepare(question, Path(tmp))
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *self.command(question, jupyter),
                cwd=work,
                env=self.environment(jupyter),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its kernel too is killed with its process group on a timeout
            )
            status = "ok"
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(), self.timeout + GRACE)
            except TimeoutError:
                status = "timeout"
                _kill_group(proc.pid)
                _, stderr = await proc.communicate()
            seconds = time.perf_counter() - started
            outcome = Outcome(
                question.id,
                question.level,
                status,
                seconds,
                exit_code=proc.returncode,
                stderr=stderr.decode(errors="replace")[-4000:],
            )
            read_run(outcome, jupyter / "agent.db")
            if status == "ok" and (proc.returncode != 0 or not outcome.answer):
                turn_timed_out = any(e.get("code") == "turn_timeout" for e in outcome.events)
                outcome.status = "timeout" if turn_timed_out else "error"
            outcome.grade = grade(outcome.answer, question.label)
            if (work / NOTEBOOK).exists():
                shutil.copy(work / NOTEBOOK, self.out / f"{question.id}.ipynb")
        write_transcript(self.out, question, outcome)
        return outcome


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_run(outcome: Outcome, db: Path) -> None:
    """The run's events from its store: the final answer, tokens (``usage`` events) and tool calls."""
    if not db.exists():
        return
    from jupyter_agent.store import Store

    store = Store(db, role="cli")
    try:
        for session in store.list_sessions():
            outcome.events += store.events(session["id"])
    finally:
        store.close()
    for event in outcome.events:
        kind = event.get("type")
        if kind == "usage":
            outcome.model_calls += 1
            outcome.prompt_tokens += int(event.get("prompt_tokens") or 0)
            outcome.completion_tokens += int(event.get("completion_tokens") or 0)
        elif kind == "tool_result":
            outcome.tool_calls += 1
            outcome.tool_errors += not event.get("ok", True)
        elif kind == "message" and event.get("role") == "assistant" and not event.get("tool_calls"):
            if not event.get("partial"):
                outcome.answer = str(event.get("content") or "")


# -- transcripts ---------------------------------------------------------------------------------------


def write_transcript(out: Path, question: Question, outcome: Outcome) -> None:
    """``<id>.json`` (everything) and ``<id>.md`` (to read) in ``out``."""
    record = {
        "question": asdict(question),
        "prompt": question.prompt(),
        "status": outcome.status,
        "seconds": round(outcome.seconds, 2),
        "exit_code": outcome.exit_code,
        "answer": outcome.answer,
        "correct": outcome.correct,
        "grade": [asdict(part) for part in outcome.grade.parts] if outcome.grade else [],
        "tokens": {"prompt": outcome.prompt_tokens, "completion": outcome.completion_tokens},
        "model_calls": outcome.model_calls,
        "tool_calls": outcome.tool_calls,
        "tool_errors": outcome.tool_errors,
        "stderr": outcome.stderr,
        "events": outcome.events,
    }
    (out / f"{question.id}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))
    (out / f"{question.id}.md").write_text(markdown(question, outcome))


def markdown(question: Question, outcome: Outcome) -> str:
    mark = "right" if outcome.correct else "wrong"
    lines = [
        f"# DABench question {question.id} ({question.level}): {mark}, {outcome.status}",
        "",
        f"{outcome.seconds:.0f} s, {outcome.tokens:,} tokens in {outcome.model_calls} model calls, "
        f"{outcome.tool_calls} tool calls ({outcome.tool_errors} failed)",
        "",
        "## Prompt",
        "",
        question.prompt(),
        "",
        "## Grade",
        "",
    ]
    for part in outcome.grade.parts if outcome.grade else ():
        lines.append(f"- `{part.name}`: expected `{part.expected}`, got `{part.given}`: {part.correct}")
    lines += ["", "## Events", ""]
    for event in outcome.events:
        lines += _event_lines(event)
    if outcome.status != "ok" and outcome.stderr:
        lines += ["", "## stderr (end)", "", "```", outcome.stderr[-2000:], "```"]
    return "\n".join(lines) + "\n"


def _event_lines(event: dict[str, Any]) -> list[str]:
    kind = event.get("type")
    if kind == "message":
        head = f"**{event.get('role')}**" + (" (partial)" if event.get("partial") else "")
        lines = [f"{head}: {event.get('content') or ''}".rstrip(), ""]
        for call in event.get("tool_calls") or []:
            lines += [f"→ `{call.get('name')}`", "", "```", str(call.get("arguments")), "```", ""]
        return lines
    if kind == "tool_result":
        text = str(event.get("content") or "")
        if len(text) > MAX_RESULT_SHOWN:
            text = text[:MAX_RESULT_SHOWN] + f"\n[... {len(text) - MAX_RESULT_SHOWN} more characters]"
        ok = "ok" if event.get("ok", True) else "failed"
        return [f"← `{event.get('name')}` {ok}, {event.get('duration_ms')} ms", "", "```", text, "```", ""]
    if kind == "usage":
        return [
            f"_usage: {event.get('prompt_tokens')} prompt + {event.get('completion_tokens')} completion "
            f"tokens, {event.get('latency_ms')} ms_",
            "",
        ]
    if kind in ("error", "done", "compaction"):
        shown = {k: v for k, v in event.items() if k not in ("session", "seq", "ts", "turn")}
        return [f"_{kind}: {json.dumps(shown, ensure_ascii=False)}_", ""]
    return []


# -- the run -------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(outcomes: list[Outcome]) -> list[str]:
    """The table: accuracy by question and by sub-answer per level, then time, tokens and failures."""
    lines = [
        f"{'level':<8}{'questions':>10}{'right':>7}{'by question':>13}{'sub-answers':>13}{'right':>7}"
        f"{'by sub-answer':>15}"
    ]
    groups = [(name, [o for o in outcomes if o.level == name]) for name in LEVELS] + [("all", outcomes)]
    for name, group in groups:
        if not group:
            continue
        right = sum(o.correct for o in group)
        parts = sum(len(o.grade.parts) for o in group if o.grade)
        parts_right = sum(o.grade.right_parts for o in group if o.grade)
        lines.append(
            f"{name:<8}{len(group):>10}{right:>7}{right / len(group):>13.1%}{parts:>13}{parts_right:>7}"
            f"{(parts_right / parts if parts else 0):>15.1%}"
        )
    seconds = [o.seconds for o in outcomes]
    tokens = [o.tokens for o in outcomes]
    lines += [
        "",
        f"seconds per question: median {statistics.median(seconds):.0f}, p90 {percentile(seconds, 0.9):.0f}, "
        f"total {sum(seconds):.0f}",
        f"tokens per question: median {statistics.median(tokens):,.0f}, p90 {percentile(tokens, 0.9):,.0f} "
        f"(prompt {sum(o.prompt_tokens for o in outcomes):,}, completion "
        f"{sum(o.completion_tokens for o in outcomes):,} in all); model calls per question: median "
        f"{statistics.median(o.model_calls for o in outcomes):.0f}",
        f"errors {sum(o.status == 'error' for o in outcomes)}, timeouts "
        f"{sum(o.status == 'timeout' for o in outcomes)}, answers without every @name[value] "
        f"{sum(1 for o in outcomes if o.grade and any(p.given is None for p in o.grade.parts))}",
    ]
    return lines


def progress_line(done: int, total: int, question: Question, outcome: Outcome) -> str:
    parts = outcome.grade.parts if outcome.grade else ()
    right = sum(p.correct for p in parts)
    given = " ".join(f"@{p.name}[{p.given}]" for p in parts if p.given is not None) or "-"
    mark = "✓" if outcome.correct else "✗"
    return (
        f"[{done:>3}/{total}] #{question.id:<4} {question.level:<6} {mark} {right}/{len(parts)} "
        f"{outcome.seconds:>5.0f} s {outcome.tokens:>7,} tok {outcome.model_calls:>2} calls "
        f"{outcome.status:<7} {given[:80]}"
    )


def hold_local_model(name: str, models_dir: Path, runtime_dir: Path) -> Any:
    """Start (or join) the embedded model's server and keep it for the run; exits saying why it cannot."""
    from jupyter_agent.local_model.registry import get_spec
    from jupyter_agent.local_model.server import LocalModelServer

    server = LocalModelServer(get_spec(name), models_dir, runtime_dir=runtime_dir)
    if not server.available:
        raise SystemExit(f"error: {server.error}")
    started = time.perf_counter()
    try:
        server.start().result()
    except Exception as err:
        raise SystemExit(f"error: the embedded model {name!r} could not start: {err}") from None
    print(f"embedded model {name} ready in {time.perf_counter() - started:.0f} s ({server.runtime})")
    return server


def default_parallel(model: str | None) -> int:
    """The embedded model already uses every core: one question at a time. A hosted model mostly waits."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if not model else max(1, cores)


async def run_all(runner: Runner, questions: list[Question], parallel: int) -> list[Outcome]:
    gate = asyncio.Semaphore(parallel)
    outcomes: list[Outcome] = []

    async def one(question: Question) -> None:
        async with gate:
            outcome = await runner.run(question)
        outcomes.append(outcome)
        print(progress_line(len(outcomes), len(questions), question, outcome), flush=True)

    await asyncio.gather(*(one(q) for q in questions))
    order = {q.id: i for i, q in enumerate(questions)}
    return sorted(outcomes, key=lambda o: order[o.id])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the DABench folder (README.md, ...)")
    parser.add_argument("--model", help="any litellm model string (default: the embedded model)")
    parser.add_argument("--local-model", help="which embedded model (default: the configured default)")
    parser.add_argument("--ids", help="question ids, comma-separated")
    parser.add_argument("--level", choices=LEVELS)
    parser.add_argument("--sample", help="so many questions per level, e.g. 10,5,5 (easy,medium,hard)")
    parser.add_argument("--seed", type=int, default=0, help="of --sample")
    parser.add_argument("--limit", type=int, help="at most this many questions")
    parser.add_argument("--parallel", type=int, help="questions at once (default: 1 embedded, else cores)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per question")
    parser.add_argument("--out", type=Path, help="transcripts (default: a new folder in the temp dir)")
    parser.add_argument("--report", type=Path, help="print the table of the transcripts in this folder")
    return parser.parse_args(argv)


def read_transcripts(folder: Path) -> list[Outcome]:
    """The outcomes written to ``folder`` (an interrupted run's too), regraded from their answers."""
    outcomes = []
    for path in sorted(folder.glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
        if not path.stem.isdigit():
            continue
        record = json.loads(path.read_text())
        question = record["question"]
        outcomes.append(
            Outcome(
                question["id"],
                question["level"],
                record["status"],
                record["seconds"],
                answer=record["answer"],
                prompt_tokens=record["tokens"]["prompt"],
                completion_tokens=record["tokens"]["completion"],
                model_calls=record["model_calls"],
                tool_calls=record["tool_calls"],
                tool_errors=record["tool_errors"],
                exit_code=record["exit_code"],
                grade=grade(record["answer"], question["label"]),
            )
        )
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        outcomes = read_transcripts(args.report)
        if not outcomes:
            raise SystemExit(f"error: no transcripts (<id>.json) in {args.report}")
        print("\n".join(summary(outcomes)))
        return 0
    if not (args.data / "questions.jsonl").exists():
        raise SystemExit(f"error: no questions.jsonl in {args.data} (pass the DABench folder with --data)")
    from jupyter_core.paths import jupyter_runtime_dir

    from jupyter_agent.composition import models_dir

    questions = choose(
        load_questions(args.data),
        ids=[int(i) for i in args.ids.split(",")] if args.ids else None,
        level=args.level,
        sample=[int(n) for n in args.sample.split(",")] if args.sample else None,
        seed=args.seed,
        limit=args.limit,
    )
    if not questions:
        raise SystemExit("error: no question matches the choice")
    out = args.out or Path(tempfile.mkdtemp(prefix="dabench-"))
    out.mkdir(parents=True, exist_ok=True)
    parallel = args.parallel or default_parallel(args.model)
    runner = Runner(
        args.data.resolve(),
        out,
        args.model,
        args.local_model,
        args.timeout,
        Path(jupyter_runtime_dir()),
        models_dir(),
    )
    server = None
    if not args.model:
        from jupyter_agent.runtime import configured_local_model, load_agent_config

        name = args.local_model or configured_local_model(load_agent_config())
        server = hold_local_model(name, runner.models_dir, runner.runtime_dir)
    model = args.model or f"local/{server.spec.name}"
    load = os.getloadavg()[0]
    counts = ", ".join(f"{n} {sum(q.level == n for q in questions)}" for n in LEVELS)
    print(
        f"DABench: {len(questions)} questions ({counts}), model {model}, parallel {parallel}, load {load:.1f}"
    )
    try:
        outcomes = asyncio.run(run_all(runner, questions, parallel))
    finally:
        if server is not None:
            server.stop()
    table = [
        f"DABench, model {model}: {len(questions)} questions ({counts}), parallel {parallel}, "
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "",
        *summary(outcomes),
    ]
    print("\n" + "\n".join(table))
    (out / "summary.txt").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(
        json.dumps(
            [
                {
                    "id": o.id,
                    "level": o.level,
                    "correct": o.correct,
                    "right_parts": o.grade.right_parts if o.grade else 0,
                    "parts": len(o.grade.parts) if o.grade else 0,
                    "status": o.status,
                    "seconds": round(o.seconds, 2),
                    "prompt_tokens": o.prompt_tokens,
                    "completion_tokens": o.completion_tokens,
                    "model_calls": o.model_calls,
                }
                for o in outcomes
            ],
            indent=1,
        )
    )
    print(f"transcripts: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
