"""Convergence under faults (issue #11, point 1): seeded scenarios of 2-4 people and the agent editing one
notebook while connections drop, rooms are freed and reloaded, the server restarts mid-turn, kernels die
mid-cell, saves race edits and another program rewrites the file. After each, every person, the server's
document and the file on disk are the same, and every edit nobody deleted is there exactly once.

One real server (a subprocess, so it can be restarted) serves every seed, each on its own notebook; see
:mod:`tests.convergence_kit`. ``benchmarks/convergence.py --seeds N`` runs many more; a failure prints its seed,
and ``--seed S`` replays it with its step log.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from jupyter_ydoc import YNotebook

from jupyter_agent.collaboration.notebooks import NotebookEditor, replace_lines
from tests.convergence_kit import EXPENSIVE, FAULTS, Cluster, plan_scenario, run_seed

CHEAP_SEEDS = 30  # seeds 0.. (each has one or two cheap faults: reconnect, sleep, reload, save race, file)
PER_EXPENSIVE_FAULT = 3  # plus this many seeds with each of restart and kernel kill


def seeds_for_ci() -> list[int]:
    chosen = [s for s in range(CHEAP_SEEDS) if not set(EXPENSIVE) & set(faults_of(s))]
    for fault in EXPENSIVE:
        chosen += [s for s in range(10_000) if fault in faults_of(s)][:PER_EXPENSIVE_FAULT]
    return sorted(set(chosen))


def faults_of(seed: int) -> list[str]:
    return [step.arg for step in plan_scenario(seed)[1] if step.kind == "fault"]


@pytest.fixture(scope="module")
def cluster():
    """One server (restartable) and scripted model for every seed; each seed edits its own notebook."""
    with Cluster() as shared:
        yield shared


def test_ci_seeds_cover_every_fault_several_times() -> None:
    counts = Counter(f for s in seeds_for_ci() for f in faults_of(s))
    assert set(counts) == set(FAULTS), counts
    assert min(counts.values()) >= PER_EXPENSIVE_FAULT, counts


@pytest.mark.parametrize("seed", seeds_for_ci())
def test_every_view_converges_and_no_edit_is_lost_under_faults(cluster: Cluster, seed: int) -> None:
    outcome, log = asyncio.run(run_seed(cluster, seed))
    replay = f".venv/bin/python benchmarks/convergence.py --seed {seed}"
    assert outcome.ok, "\n".join([f"seed {seed} (replay: {replay})", *outcome.lost, *outcome.divergent, *log])
    assert not outcome.notes, outcome.notes
    assert sorted(outcome.faults.elements()) == sorted(faults_of(seed))  # every planned fault happened


def test_agent_edit_inserts_its_lines_whole_while_a_person_deletes_next_to_them() -> None:
    """Seed 17 lost the agent's new line: a character diff wrote it partly with characters of the old text
    (here "⟩\n# ⟨a:1" after the old "⟨h:0"), which a person deleted at the same moment, leaving "# ⟩\n# ⟨a:1".
    Line-wise edits insert the agent's text whole."""
    old = "# ⟨h:0⟩\nx = 1\n# ⟨h:1⟩"
    agent = YNotebook()
    agent.append_cell({"id": "c", "cell_type": "code", "source": old, "metadata": {}, "outputs": []})
    person = YNotebook()
    person.ydoc.apply_update(agent.ydoc.get_update())
    # The person deletes "⟨h:0⟩" (pycrdt indexes UTF-8 bytes) while the agent adds a line under it.
    del person.ycells[0]["source"][len(b"# ") : len("# ⟨h:0⟩".encode())]
    with agent.ydoc.transaction():
        replace_lines(agent.ycells[0]["source"], "# ⟨h:0⟩\n# ⟨a:1⟩\nx = 1\n# ⟨h:1⟩")
    agent.ydoc.apply_update(person.ydoc.get_update())
    person.ydoc.apply_update(agent.ydoc.get_update())
    assert str(agent.ycells[0]["source"]) == str(person.ycells[0]["source"]) == "# \n# ⟨a:1⟩\nx = 1\n# ⟨h:1⟩"


class OneNotebook:
    """A DocumentProvider holding one in-memory notebook: the live document the agent and a person share."""

    root_dir = None

    def __init__(self, source: str) -> None:
        self.doc = YNotebook()
        self.doc.append_cell(
            {"id": "c", "cell_type": "code", "source": source, "metadata": {}, "outputs": []}
        )

    async def notebook(self, path: str) -> YNotebook:
        return self.doc

    async def open_text(self, path: str) -> None:
        return None

    async def saved(self, path: str) -> None:
        return None


def test_agents_second_edit_keeps_what_a_person_typed_before_its_first() -> None:
    """Seed 10 lost a person's typing: the agent's first edit was merged with it, and the agent then took
    the merge for the source it knew, so its second edit (written from what it had sent) reverted the typing."""

    async def scenario() -> str:
        documents = OneNotebook("a = 1\nb = 2\nc = 3")
        editor = NotebookEditor(documents)  # type: ignore[arg-type]
        await editor.read("t.ipynb")
        text = documents.doc.ycells[0]["source"]
        text.insert(0, "# a person's note\n")  # typed after the agent read the cell
        await editor.edit_cell("t.ipynb", "c", "a = 1\nb = 2\nc = 3\nd = 4")
        await editor.edit_cell("t.ipynb", "c", "a = 1\nb = 2\nc = 3\nd = 4\ne = 5")
        return str(text)

    assert asyncio.run(scenario()) == "# a person's note\na = 1\nb = 2\nc = 3\nd = 4\ne = 5"
