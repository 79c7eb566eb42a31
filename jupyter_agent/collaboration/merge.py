"""Three-way line merges of text (pure difflib): what the agent's edits and their undo apply to live text.

``merge_source(base, current, new)`` carries the changes from ``base`` to ``new`` over to ``current``, which
others changed from ``base`` meanwhile, as ``git merge`` does line by line. Where a change of ours touches
lines someone else changed too, it is a conflict: ``merge_source`` gives None, and ``force_merge`` takes
ours for those lines (theirs everywhere else).
"""

from __future__ import annotations

from difflib import SequenceMatcher


def _merge(base: str, current: str, new: str, force: bool) -> str | None:
    old_lines, live, wanted = (s.splitlines(keepends=True) for s in (base, current, new))
    blocks = SequenceMatcher(None, old_lines, live, autojunk=False).get_matching_blocks()

    def unchanged(i1: int, i2: int) -> int | None:
        # Where lines i1:i2 of base are in current, if nobody else changed them (or where to insert, if i1 == i2).
        for a, b, size in blocks:
            if a <= i1 and i2 <= a + size and (size or i1 == i2 == a):
                return b + (i1 - a)
        return None

    def around(i1: int, i2: int) -> tuple[int, int]:
        # The live lines standing for base lines i1:i2 that someone changed: from the end of the last
        # unchanged block before them to the start of the first one after.
        start = max((b + min(size, i1 - a) for a, b, size in blocks if a <= i1), default=0)
        end = min((b + max(0, i2 - a) for a, b, size in blocks if a + size >= i2 and size), default=len(live))
        return start, max(start, end)

    edits = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old_lines, wanted, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        at = unchanged(i1, i2)
        if at is not None:
            edits.append((at, at + (i2 - i1), wanted[j1:j2]))
        elif force:
            start, end = around(i1, i2)
            edits.append((start, end, wanted[j1:j2]))
        else:
            return None
    edits.sort(key=lambda edit: (edit[0], edit[1]))
    merged: list[str] = []
    position = 0
    for start, end, lines in edits:
        start = max(start, position)  # forced regions may overlap: each live line is replaced once
        merged.extend(live[position:start])
        merged.extend(lines)
        position = max(position, end)
    merged.extend(live[position:])
    return "".join(merged)


def merge_source(base: str, current: str, new: str) -> str | None:
    """Apply the changes from ``base`` to ``new`` onto ``current``; None when they touch lines changed there."""
    return _merge(base, current, new, force=False)


def force_merge(base: str, current: str, new: str) -> str:
    """As :func:`merge_source`, but where both changed the same lines ours win (only those lines)."""
    merged = _merge(base, current, new, force=True)
    assert merged is not None
    return merged


def line_counts(before: str, after: str) -> tuple[int, int]:
    """Lines added and removed from ``before`` to ``after``."""
    old, new = before.splitlines(), after.splitlines()
    added = removed = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def unified_diff(before: str, after: str, name: str, limit: int = 200_000) -> str:
    """A unified diff of two texts (cut at ``limit`` characters, saying so)."""
    from difflib import unified_diff as diff_lines

    lines = diff_lines(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}", n=2
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]\n"
