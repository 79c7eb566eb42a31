"""Review and undo of agent turns: what each turn changed, and taking it back without losing anyone's work.

Every change a tool makes to a notebook cell or a file is recorded in the store under its session and turn
(``Store.add_change``): the cell or file as it was just before and just after, read in the same step as the
edit. A turn's *targets* are the cells and files it touched, each with its net change (the state before its
first change and after its last). Undo carries every target from "after" back to "before", redo the other
way, each three-way against what the document holds now, in one transaction per notebook:

- text others changed elsewhere (in other cells, or other lines of the same cell or file) is kept;
- where someone changed the very lines the turn wrote, nothing is overwritten: that target is a *conflict*,
  reported with their text, which a person settles by keeping theirs or taking the turn's change back;
- a cell the turn inserted is removed only if nobody edited it since; a deleted cell comes back between its
  old neighbours; outputs the turn produced are cleared (the cell's earlier ones put back) unless the cell has
  run again since.

Because it works from the record and the live documents, not from an in-memory undo stack, it works for any
earlier turn, after a reload and after a server restart. In review mode (``edit_mode = "review"``) a turn's
notebook edits carry a pending marker in the cell's metadata (every collaborator sees it) until a person
accepts them (markers cleared, pending deletions carried out) or rejects them (reverted as by undo).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jupyter_agent.collaboration.merge import force_merge, line_counts, merge_source, unified_diff
from jupyter_agent.errors import BadRequest, Conflict, NotFound

#: What a turn's changes are, as a whole: as made; undone; waiting for review; accepted or rejected after
#: review; some targets decided and others not.
STATES = ("applied", "undone", "pending", "accepted", "rejected", "partial")
CHOICES = ("keep", "revert")  # a conflict settled: keep the person's text, or take the turn's change back


@dataclass
class Target:
    """One cell or file a turn changed, with its net change."""

    key: str
    target: str  # cell | file
    path: str
    cell_id: str | None
    before: Any  # cell: cell_state() or None (did not exist); file: text or None
    after: Any
    pending: bool = False
    tasks: list[str] = field(default_factory=list)
    unrecorded: bool = False  # a binary or very large file: not kept, so not reverted here

    @property
    def op(self) -> str:
        if self.target == "file":
            return "create" if self.before is None else "write"
        if self.before is None:
            return "insert"
        if self.after is None:
            return "delete"
        return "edit" if _source(self.before) != _source(self.after) else "outputs"

    def texts(self) -> tuple[str, str]:
        if self.target == "file":
            return self.before or "", self.after or ""
        return _source(self.before), _source(self.after)


def change_key(change: dict[str, Any]) -> str:
    if change.get("target") == "cell":
        return f"cell:{change['path']}:{change['cell_id']}"
    return f"file:{change['path']}"


def summarize(change: dict[str, Any]) -> dict[str, Any]:
    """What a ``change`` event shows of one recorded change (no contents: those are read on demand)."""
    before, after = change.get("before"), change.get("after")
    if change.get("target") == "cell":
        added, removed = line_counts(_source(before), _source(after))
        extra = {"cell_id": change["cell_id"], "cell_type": change.get("cell_type")}
    else:
        added, removed = line_counts(before or "", after or "")
        extra = {}
    return {
        "key": change_key(change),
        "target": change.get("target"),
        "op": change.get("op"),
        "path": change.get("path"),
        **extra,
        "added": added,
        "removed": removed,
        "pending": bool(change.get("pending")),
    }


def net_targets(changes: list[dict[str, Any]]) -> list[Target]:
    """The cells and files a turn touched, in the order it first touched them, each with its net change."""
    targets: dict[str, Target] = {}
    for change in changes:
        key = change_key(change)
        found = targets.get(key)
        if found is None:
            found = targets[key] = Target(
                key, change["target"], change["path"], change.get("cell_id"), change.get("before"), None
            )
        found.after = change.get("after")
        found.pending = found.pending or bool(change.get("pending"))
        found.unrecorded = found.unrecorded or bool(change.get("unrecorded"))
        task = change.get("task")
        if task and task not in found.tasks:
            found.tasks.append(task)
    # A cell inserted and deleted by the same turn left nothing behind.
    return [t for t in targets.values() if not (t.target == "cell" and t.before is None and t.after is None)]


class TurnReview:
    """Reads and reverts what turns changed, through the tool services of this process.

    ``services`` are the engine's tool services: ``notebooks`` (a NotebookEditor over the live documents)
    and ``workspace`` (files); where one is missing here (a kernel has no notebook editor), its targets are
    reported as skipped.
    """

    def __init__(self, store: Any, services: dict[str, Any]) -> None:
        self.store = store
        self.services = services

    # -- recording and reading ----------------------------------------------------------------------------
    def record(self, session_id: str, turn: str, change: dict[str, Any]) -> dict[str, Any]:
        """Keep one change of ``turn``; returns its summary (the ``change`` event's body)."""
        self.store.add_change(session_id, turn, change)
        return summarize(change)

    def state(self, session_id: str, turn: str, targets: list[Target] | None = None) -> dict[str, Any]:
        saved = self.store.get_value(f"review:{session_id}:{turn}")
        if saved is not None:
            return saved
        if targets is None:
            targets = net_targets(self.store.changes(session_id, turn))
        pending = any(t.pending for t in targets)
        return {"state": "pending" if pending else "applied", "keys": {}, "conflicts": {}}

    def changes(self, session_id: str, turn: str, edit_mode: str = "live") -> dict[str, Any]:
        """What ``turn`` changed: its targets with their diffs, its state and its open conflicts."""
        targets = net_targets(self.store.changes(session_id, turn))
        state = self.state(session_id, turn, targets)
        rows = []
        totals = {"cells": 0, "files": 0, "added": 0, "removed": 0}
        for t in targets:
            before, after = t.texts()
            added, removed = line_counts(before, after)
            name = t.path if t.target == "file" else f"{t.path}#{t.cell_id}"
            row: dict[str, Any] = {
                "key": t.key,
                "target": t.target,
                "op": t.op,
                "path": t.path,
                "added": added,
                "removed": removed,
                "diff": unified_diff(before, after, name) if not t.unrecorded else "",
                "pending": t.pending and t.key not in state["keys"],
                "tasks": t.tasks,
                "state": state["keys"].get(t.key, state["state"]),
            }
            if t.target == "cell":
                cell = (t.after or t.before or {}).get("cell") or {}
                row.update(cell_id=t.cell_id, cell_type=cell.get("cell_type"))
                row["index"] = (t.after or t.before or {}).get("index")
                outputs = [
                    len(((s or {}).get("cell") or {}).get("outputs") or []) for s in (t.before, t.after)
                ]
                if t.op == "outputs" or outputs[0] != outputs[1]:
                    row["outputs"] = {"before": outputs[0], "after": outputs[1]}
            if t.unrecorded:
                row["unrecorded"] = True
            totals["cells" if t.target == "cell" else "files"] += 1
            totals["added"] += added
            totals["removed"] += removed
            rows.append(row)
        if not rows and not self._turn_exists(session_id, turn):
            raise NotFound(f"no turn {turn!r} in session {session_id!r}")
        return {
            "session": session_id,
            "turn": turn,
            "state": state["state"] if rows else "none",
            "edit_mode": edit_mode,
            "totals": totals,
            "targets": rows,
            "conflicts": list(state["conflicts"].values()),
        }

    def _turn_exists(self, session_id: str, turn: str) -> bool:
        return any(e.get("turn") == turn for e in self.store.iter_events(session_id, ("message",)))

    def last_turn(self, session_id: str) -> str:
        """The latest turn whose changes stand (as made, or accepted): what a bare "undo" takes back."""
        for turn in reversed(self.store.changed_turns(session_id)):
            if self.state(session_id, turn)["state"] not in ("undone", "rejected"):
                return turn
        raise NotFound("no turn of this session has changes to undo")

    def last_undone(self, session_id: str) -> str:
        """The latest turn that is undone or rejected: what a bare "redo" applies again."""
        for turn in reversed(self.store.changed_turns(session_id)):
            if self.state(session_id, turn)["state"] in ("undone", "rejected"):
                return turn
        raise NotFound("no turn of this session is undone: there is nothing to redo")

    # -- acting -----------------------------------------------------------------------------------------------
    async def undo(self, session_id: str, turn: str, resolve: dict[str, str] | None = None) -> dict[str, Any]:
        """Take back ``turn``'s changes (or, once undone, settle its conflicts with ``resolve``)."""
        targets = self._targets(session_id, turn)
        state = self.state(session_id, turn, targets)
        if resolve:
            return await self._resolve(session_id, turn, targets, state, resolve)
        if state["state"] in ("undone", "rejected"):
            raise Conflict(f"turn {turn} is already undone; redo it to apply it again", code="already_undone")
        chosen = [t for t in targets if state["keys"].get(t.key) != "rejected"]
        done, conflicts, skipped = await self._carry(session_id, turn, chosen, "undo")
        state.update(state="undone", keys={}, conflicts={c["key"]: c for c in conflicts})
        self._save(session_id, turn, state)
        return {"state": "undone", "reverted": done, "conflicts": conflicts, "skipped": skipped}

    async def redo(self, session_id: str, turn: str) -> dict[str, Any]:
        targets = self._targets(session_id, turn)
        state = self.state(session_id, turn, targets)
        if state["state"] not in ("undone", "rejected"):
            raise Conflict(f"turn {turn} is not undone: there is nothing to redo", code="not_undone")
        done, conflicts, skipped = await self._carry(session_id, turn, targets, "redo")
        state.update(state="applied", keys={}, conflicts={c["key"]: c for c in conflicts})
        self._save(session_id, turn, state)
        return {"state": "applied", "applied": done, "conflicts": conflicts, "skipped": skipped}

    async def review(
        self, session_id: str, turn: str, action: str, cells: list[str] | None = None
    ) -> dict[str, Any]:
        """Accept or reject the pending edits of a turn made in review mode (all, or those of ``cells``)."""
        if action not in ("accept", "reject"):
            raise BadRequest('action must be "accept" or "reject"')
        if cells is not None and (not isinstance(cells, list) or not all(isinstance(c, str) for c in cells)):
            raise BadRequest("cells must be a list of cell ids")
        targets = self._targets(session_id, turn)
        state = self.state(session_id, turn, targets)
        open_ = [t for t in targets if t.pending and t.key not in state["keys"]]
        if state["state"] in ("undone", "rejected"):
            open_ = []
        if cells is not None:
            open_ = [t for t in open_ if t.target == "cell" and t.cell_id in cells]
        if not open_:
            raise Conflict(
                f"turn {turn} has no pending edits{' in those cells' if cells else ''}", code="not_pending"
            )
        if action == "accept":
            done, conflicts, skipped = await self._carry(session_id, turn, open_, "accept")
        else:
            done, conflicts, skipped = await self._carry(session_id, turn, open_, "undo")
        decided = "accepted" if action == "accept" else "rejected"
        for t in open_:
            state["keys"][t.key] = decided
        state["conflicts"].update({c["key"]: c for c in conflicts})
        still = [t for t in targets if t.pending and t.key not in state["keys"]]
        kinds = set(state["keys"].values())
        state["state"] = "partial" if still or len(kinds) > 1 else decided
        self._save(session_id, turn, state)
        name = "accepted" if action == "accept" else "reverted"
        return {
            "state": state["state"],
            name: done,
            "conflicts": conflicts,
            "skipped": skipped,
            "cells": cells,
        }

    async def _resolve(
        self,
        session_id: str,
        turn: str,
        targets: list[Target],
        state: dict[str, Any],
        resolve: dict[str, str],
    ) -> dict[str, Any]:
        if not isinstance(resolve, dict) or any(v not in CHOICES for v in resolve.values()):
            raise BadRequest('resolve maps conflict keys to "keep" or "revert"')
        unknown = [k for k in resolve if k not in state["conflicts"]]
        if unknown:
            raise NotFound(f"no open conflict for {', '.join(unknown)} in turn {turn}")
        by_key = {t.key: t for t in targets}
        forced = [by_key[k] for k, choice in resolve.items() if choice == "revert"]
        directions = {state["conflicts"][t.key]["direction"] for t in forced}
        done: list[str] = []
        skipped: list[dict[str, Any]] = []
        for direction in directions:
            chosen = [t for t in forced if state["conflicts"][t.key]["direction"] == direction]
            got, _conflicts, missed = await self._carry(session_id, turn, chosen, direction, force=True)
            done += got
            skipped += missed
        for key in resolve:
            state["conflicts"].pop(key, None)
        self._save(session_id, turn, state)
        return {
            "state": state["state"],
            "reverted": done,
            "kept": [k for k, choice in resolve.items() if choice == "keep"],
            "conflicts": list(state["conflicts"].values()),
            "skipped": skipped,
        }

    def _targets(self, session_id: str, turn: str) -> list[Target]:
        targets = net_targets(self.store.changes(session_id, turn))
        if not targets:
            if not self._turn_exists(session_id, turn):
                raise NotFound(f"no turn {turn!r} in session {session_id!r}")
            raise Conflict(f"turn {turn} changed no notebook or file", code="no_changes")
        return targets

    def _save(self, session_id: str, turn: str, state: dict[str, Any]) -> None:
        self.store.set_value(f"review:{session_id}:{turn}", state)

    async def _carry(
        self, session_id: str, turn: str, targets: list[Target], direction: str, force: bool = False
    ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        """Carry targets back (undo) or forth (redo, accept); (done keys, conflicts, skipped)."""
        done: list[str] = []
        conflicts: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        ordered = list(reversed(targets)) if direction == "undo" else targets
        notebooks: dict[str, list[Target]] = {}
        for t in ordered:
            if t.target == "cell":
                notebooks.setdefault(t.path, []).append(t)
        for path, group in notebooks.items():
            editor = self.services.get("notebooks")
            if editor is None:
                skipped += [{"key": t.key, "message": "notebooks cannot be edited here"} for t in group]
                continue
            try:
                nb = await editor.documents.notebook(path)
            except NotFound as err:
                skipped += [{"key": t.key, "message": err.message} for t in group]
                continue
            outcomes = carry_cells(nb, session_id, turn, group, direction, force)
            await editor.documents.saved(path)
            for t, (status, detail) in zip(group, outcomes, strict=True):
                _sort(t, status, detail, direction, done, conflicts, skipped)
        workspace = self.services.get("workspace")
        for t in ordered:
            if t.target != "file":
                continue
            if t.unrecorded:
                skipped.append(
                    {"key": t.key, "message": "binary or too large to keep; restore it from a backup"}
                )
                continue
            if workspace is None or direction == "accept":
                continue
            base, new = (t.after, t.before) if direction == "undo" else (t.before, t.after)
            try:
                outcome = await workspace.apply_text(t.path, base, new, force)
            except (NotFound, BadRequest) as err:
                skipped.append({"key": t.key, "message": err.message})
                continue
            detail = {"theirs": outcome["theirs"], "turns": new}
            _sort(t, outcome["status"], detail, direction, done, conflicts, skipped)
        return done, conflicts, skipped


def describe(result: dict[str, Any]) -> str:
    """An undo's, redo's or review's outcome in words (the CLI and ``%agent undo`` print it)."""
    verb = {"undone": "Undid", "applied": "Applied", "accepted": "Accepted", "rejected": "Rejected"}
    done = [*(result.get("reverted") or []), *(result.get("applied") or []), *(result.get("accepted") or [])]
    names = ", ".join(k.split(":", 1)[1] for k in done) or "nothing to change"
    lines = [f"{verb.get(result.get('state', ''), 'Changed')} turn {result.get('turn')}: {names}."]
    lines += [f"  skipped {s['key'].split(':', 1)[1]}: {s['message']}" for s in result.get("skipped") or []]
    for conflict in result.get("conflicts") or []:
        lines.append(
            f"  conflict {conflict['key'].split(':', 1)[1]}: {conflict['message']}; kept as it is now:"
        )
        lines += [f"    | {line}" for line in str(conflict.get("theirs") or "").splitlines()[:20]]
    if result.get("conflicts"):
        lines.append(
            "Settle the conflicts: keep theirs (--resolve keep) or take the turn's change back (--resolve revert)."
        )
    return "\n".join(lines)


def _sort(
    t: Target,
    status: str,
    detail: dict[str, Any],
    direction: str,
    done: list[str],
    conflicts: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
) -> None:
    if status in ("applied", "unchanged"):
        done.append(t.key)
    elif status == "conflict":
        what = f"cell {t.cell_id} of {t.path}" if t.target == "cell" else t.path
        conflicts.append(
            {
                "key": t.key,
                "path": t.path,
                **({"cell_id": t.cell_id} if t.cell_id else {}),
                "direction": direction,
                "message": detail.get("message") or f"{what} was changed since, where this turn changed it",
                "theirs": detail.get("theirs"),
                "turns": detail.get("turns"),
            }
        )
    else:
        skipped.append({"key": t.key, "message": detail.get("message", status)})


# -- cells, in one transaction per notebook ---------------------------------------------------------------
def carry_cells(
    nb: Any, session_id: str, turn: str, targets: list[Target], direction: str, force: bool
) -> list[tuple[str, dict[str, Any]]]:
    """Carry cell targets of one notebook, in one transaction of the agent: [(status, detail)] per target."""
    from jupyter_agent.collaboration.documents import agent_transaction

    outcomes = []
    with agent_transaction(nb):
        cells = CellIndex(nb)  # the cells' ids, read once: looking one up in the CRDT costs O(cells)
        for t in targets:
            if direction == "undo":
                outcome = _carry_cell(cells, t, t.after, t.before, force)
            elif direction == "redo":
                outcome = _carry_cell(cells, t, t.before, t.after, force)
            else:  # accept: pending deletions go; the rest stays as it is
                outcome = _carry_cell(cells, t, t.before, None, force) if t.after is None else ("applied", {})
            outcomes.append(outcome)
        _clear_markers(cells, session_id, turn, {t.cell_id for t in targets})
    return outcomes


class CellIndex:
    """A notebook's cells by id, kept in step with the inserts and deletes made through it."""

    def __init__(self, nb: Any) -> None:
        self.nb = nb
        self.ids: list[Any] = [c.get("id") for c in nb.ycells]

    def find(self, cell_id: Any) -> int | None:
        try:
            return self.ids.index(cell_id)
        except ValueError:
            return None

    def delete(self, index: int) -> None:
        del self.nb.ycells[index]
        del self.ids[index]

    def insert(self, state: dict[str, Any]) -> None:
        """Put a cell back after its old previous neighbour, else before its old next one, else where it was."""
        if state.get("prev") in self.ids:
            index = self.ids.index(state["prev"]) + 1
        elif state.get("next") in self.ids:
            index = self.ids.index(state["next"])
        else:
            index = min(int(state.get("index") or 0), len(self.ids))
        self.nb.ycells.insert(index, self.nb.create_ycell(state["cell"]))
        self.ids.insert(index, state["cell"].get("id"))


def _carry_cell(
    cells: CellIndex, t: Target, frm: dict[str, Any] | None, to: dict[str, Any] | None, force: bool
) -> tuple[str, dict[str, Any]]:
    from jupyter_agent.collaboration.notebooks import replace_lines

    index = cells.find(t.cell_id)
    if to is None:  # the cell should not be there
        if index is None:
            return "unchanged", {}
        live = str(cells.nb.ycells[index]["source"])
        if frm is not None and live != _source(frm) and not force:
            return "conflict", {
                "theirs": live,
                "turns": None,
                "message": f"cell {t.cell_id} of {t.path}, which this turn added, was edited since",
            }
        cells.delete(index)
        return "applied", {}
    if index is None:  # the cell should be there
        if frm is not None:
            return "skipped", {"message": f"cell {t.cell_id} of {t.path} was deleted since; left deleted"}
        cells.insert(to)
        return "applied", {}
    if frm is None:
        return "unchanged", {}  # already there (a pending deletion rejected, or put back by someone)
    ycell = cells.nb.ycells[index]
    live = str(ycell["source"])
    base, wanted = _source(frm), _source(to)
    if base != wanted and live != wanted:
        merged = force_merge(base, live, wanted) if force else merge_source(base, live, wanted)
        if merged is None:
            return "conflict", {"theirs": live, "turns": wanted}
        replace_lines(ycell["source"], merged)
    outputs = _outputs(frm), _outputs(to)
    if outputs[0] != outputs[1] and ycell.get("cell_type") == "code":
        now = _outputs({"cell": ycell.to_py() or {}})
        if now == outputs[0] or force:
            _set_outputs(ycell, to["cell"])
        elif now != outputs[1]:
            return "skipped", {
                "message": f"cell {t.cell_id} of {t.path} ran again since; its outputs are kept"
            }
    return "applied", {}


def _set_outputs(ycell: Any, cell: dict[str, Any]) -> None:
    from pycrdt import Map, Text

    youts = ycell["outputs"]
    youts.clear()
    for out in cell.get("outputs") or []:
        if out.get("output_type") == "stream":
            out = {**out, "text": Text(str(out.get("text", "")))}
        youts.append(Map(out))
    ycell["execution_count"] = cell.get("execution_count")


def _clear_markers(cells: CellIndex, session_id: str, turn: str, cell_ids: set[str | None]) -> None:
    from jupyter_agent.collaboration.notebooks import PENDING_KEY

    for cell_id in cell_ids:
        index = cells.find(cell_id)
        if index is None:
            continue
        metadata = cells.nb.ycells[index]["metadata"]
        marker = metadata.get(PENDING_KEY)
        if isinstance(marker, dict) and marker.get("turn") == turn and marker.get("session") == session_id:
            del metadata[PENDING_KEY]


def _source(state: dict[str, Any] | None) -> str:
    if not state:
        return ""
    source = (state.get("cell") or {}).get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _outputs(state: dict[str, Any] | None) -> str:
    cell = (state or {}).get("cell") or {}
    return json.dumps([cell.get("outputs") or [], cell.get("execution_count")], sort_keys=True, default=str)
