"""What a person's edits in the plan approval view send to the engine (``plan_edit``), and how a plan's task
is named when it asks for approval under a cell."""

from __future__ import annotations

from jupyter_agent.kernel.plain_view import PlainView
from jupyter_agent.kernel.plan_view import parse_ids, plan_edits

TASKS = [
    {
        "id": "t1",
        "title": "Load data",
        "description": "read sales.csv",
        "depends_on": [],
        "tools": ["python_run"],
        "notebooks": [],
        "acceptance": "df exists",
        "estimate_s": 12.0,
    },
    {"id": "t2", "title": "Fit", "description": "fit a model", "depends_on": ["t1"], "estimate_s": 30.0},
]


def rows(**changes: dict) -> list[dict]:
    out = [
        {"id": t["id"], "keep": True, "title": t["title"], "depends_on": list(t["depends_on"])} for t in TASKS
    ]
    for row in out:
        row.update(changes.get(row["id"], {}))
    return out


def test_an_untouched_plan_sends_no_edit():
    assert plan_edits(TASKS, rows()) is None


def test_a_new_title_keeps_the_rest_of_the_task():
    edit = plan_edits(TASKS, rows(t1={"title": "Load the data "}))
    assert edit is not None
    first = edit["tasks"][0]
    assert first["title"] == "Load the data"
    assert first["description"] == "read sales.csv" and first["tools"] == ["python_run"]
    assert "estimate_s" not in first  # the engine keeps its own estimate for a task it knows
    assert [t["id"] for t in edit["tasks"]] == ["t1", "t2"]


def test_unticked_or_emptied_tasks_are_dropped():
    edit = plan_edits(TASKS, rows(t2={"keep": False}))
    assert edit is not None and [t["id"] for t in edit["tasks"]] == ["t1"]
    edit = plan_edits(TASKS, rows(t2={"title": "  "}))
    assert edit is not None and [t["id"] for t in edit["tasks"]] == ["t1"]


def test_changed_dependencies_and_added_tasks():
    added = {"id": None, "keep": True, "title": "Write up", "depends_on": ["t1", "t2"]}
    edit = plan_edits(TASKS, [*rows(t2={"depends_on": []}), added])
    assert edit is not None
    assert edit["tasks"][1]["depends_on"] == []
    assert edit["tasks"][2] == {
        "id": "t3",
        "title": "Write up",
        "description": "Write up",
        "depends_on": ["t1", "t2"],
    }


def test_a_new_task_id_never_collides():
    tasks = [{"id": "t3", "title": "x", "depends_on": []}]
    new = {"id": None, "keep": True, "title": "y", "depends_on": []}
    edit = plan_edits(tasks, [{"id": "t3", "keep": True, "title": "x", "depends_on": []}, new])
    assert edit is not None and [t["id"] for t in edit["tasks"]] == ["t3", "t2"]
    dropped_new = {**new, "keep": False}
    assert (
        plan_edits(tasks, [{"id": "t3", "keep": True, "title": "x", "depends_on": []}, dropped_new]) is None
    )


def test_ids_are_read_from_commas_or_spaces():
    assert parse_ids(" t1, t2;t3  t4 ") == ["t1", "t2", "t3", "t4"]
    assert parse_ids("") == []


def test_a_tasks_approval_names_the_task_that_asks(monkeypatch, capsys):
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    answers: list[tuple[str, str]] = []
    view = PlainView(on_approve=lambda call_id, decision: answers.append((call_id, decision)))
    view.handle({"type": "plan", "status": "running", "tasks": TASKS})
    request = {
        "type": "approval_request",
        "call_id": "c1",
        "name": "shell_run",
        "arguments": {"command": "ls"},
    }
    view.handle({**request, "task": "t1"})
    view.handle({**request, "call_id": "c2"})  # the turn's own call: no task to name
    assert asked == [
        'Task t1 · Load data: Allow shell_run({"command": "ls"})? [y/a/N]: ',
        'Allow shell_run({"command": "ls"})? [y/a/N]: ',
    ]
    assert answers == [("c1", "deny"), ("c2", "deny")]
    assert "Plan:" in capsys.readouterr().out
