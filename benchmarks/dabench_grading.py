"""DABench's grading rule, exactly as the dataset's README states it, with nothing of jupyter_agent in it.

An answer holds ``@name[value]`` for every name of the label; they are found with ``@(\\w+)\\[(.*?)\\]``. A
sub-answer is right when its text equals the label's, or when both parse as floats less than 1e-6 apart. A
question is right when all its sub-answers are. Kept apart from the benchmark so the rule can be read and
tested on its own, and so nothing the agent does can change how it is scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER = re.compile(r"@(\w+)\[(.*?)\]")
TOLERANCE = 1e-6


@dataclass(frozen=True)
class SubGrade:
    """One named part of a question's answer."""

    name: str
    expected: str
    given: str | None  # None: the answer did not name it
    correct: bool


@dataclass(frozen=True)
class Grade:
    """A question's grade: right when every sub-answer is."""

    parts: tuple[SubGrade, ...]

    @property
    def correct(self) -> bool:
        return bool(self.parts) and all(part.correct for part in self.parts)

    @property
    def right_parts(self) -> int:
        return sum(part.correct for part in self.parts)


def extract(answer: str) -> dict[str, str]:
    """Every ``@name[value]`` in ``answer``; a name given twice keeps its last value (the final word)."""
    return {name: value for name, value in ANSWER.findall(answer or "")}


def same_value(given: str, expected: str) -> bool:
    """The README's rule for one sub-answer: equal text, or floats less than 1e-6 apart."""
    if given == expected:
        return True
    try:
        return abs(float(given) - float(expected)) < TOLERANCE
    except ValueError:
        return False


def grade(answer: str, label: list[tuple[str, str]] | list[list[str]]) -> Grade:
    """Grade ``answer`` against ``label`` (the ``common_answers`` pairs of ``labels.jsonl``)."""
    found = extract(answer)
    parts = []
    for name, expected in label:
        given = found.get(name)
        parts.append(SubGrade(name, expected, given, given is not None and same_value(given, expected)))
    return Grade(tuple(parts))
