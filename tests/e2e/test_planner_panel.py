"""The Agent Planner panel in real JupyterLab: a goal planned from the chat, edited and approved in the panel,
paused and resumed, its tasks watched to the end, a task's transcript opened from the graph, and a task's
tool approvals answered in the panel or in a collaborator's chat."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.e2e.conftest import ARTIFACTS, ChatPage

pytestmark = pytest.mark.e2e

GOAL = "Summarise the sales by region and by month"
SALES = "region,month,amount\nnorth,jan,10\nsouth,jan,7\nnorth,feb,12\n"
# t1 -> (t2, t3) -> t4: the longest chain by estimate is t1, t2, t4.
PLAN = [
    ("t1", "Load the sales data", [], 5),
    ("t2", "Summarise by region", ["t1"], 20),
    ("t3", "Summarise by month", ["t1"], 4),
    ("t4", "Write the report", ["t2", "t3"], 6),
]
TASK_DELAY = 0.6  # seconds each task's answer takes: long enough to see the task running
LOAD_DELAY = 1.5  # t1's first answer: the plan is still running when the test pauses it


def task_of(body: dict[str, Any]) -> str:
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return re.search(r"Your task \(id: ([^)]+)\)", first).group(1)


class PlanScript:
    """The scripted model of a plan: answers the planning request (it carries ``response_format``) with
    PLAN, and each task's turn by the task id its prompt names; t1 reads sales.csv with a tool first."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        if body.get("response_format"):
            tasks = [
                {
                    "id": task_id,
                    "title": title,
                    "description": f"{title}, from sales.csv.",
                    "depends_on": deps,
                    "tools": ["file_read"],
                    "notebooks": [],
                    "estimate_s": estimate,
                    "acceptance": f"{title.lower()} is written down",
                }
                for task_id, title, deps, estimate in PLAN
            ]
            return Reply(text=json.dumps({"tasks": tasks}))
        task = task_of(body)
        last = body["messages"][-1]
        if task == "t1" and last["role"] != "tool":
            return Reply(tool_calls=[ToolCallSpec("file_read", {"path": "sales.csv"})], delay=LOAD_DELAY)
        if last["role"] == "tool":
            return Reply(text=f"{task} finished: read {last['content'].splitlines()[0]}", delay=TASK_DELAY)
        return Reply(text=f"{task} finished.", delay=TASK_DELAY)


def node(chat: ChatPage, task: str) -> Locator:
    return chat.page.locator(f'[data-testid="agent-plan-node"][data-task="{task}"]')


def record_node_states(chat: ChatPage) -> None:
    """Record in the page every state each graph node shows, in order."""
    chat.page.evaluate(
        """() => {
            const seen = (window.__nodeStates = {});
            const look = () => document.querySelectorAll('[data-testid="agent-plan-node"]').forEach(n => {
                const states = (seen[n.dataset.task] = seen[n.dataset.task] || []);
                if (states[states.length - 1] !== n.dataset.state) states.push(n.dataset.state);
            });
            new MutationObserver(look).observe(document.body, {
                subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']
            });
            look();
        }"""
    )


def open_planner(chat: ChatPage) -> None:
    chat.page.keyboard.press("Control+Shift+C")
    palette = chat.page.locator(".lm-CommandPalette-input:visible")
    expect(palette).to_have_count(1)
    palette.fill("Open Agent Planner")
    chat.page.locator(".lm-CommandPalette-item:visible", has_text="Open Agent Planner").first.click()
    expect(chat.by_id("agent-planner")).to_be_visible()


def test_planner_panel_approves_steers_and_shows_a_plan_running(
    lab: JupyterServer, chat: ChatPage, llm: ScriptedLLM
) -> None:
    (lab.root / "sales.csv").write_text(SALES)
    llm.default = PlanScript()
    chat.page.set_viewport_size({"width": 1700, "height": 1000})

    # The chat asks for a plan: "Plan first" sends the prompt with plan: true, once.
    plan_first = chat.by_id("agent-plan-first")
    expect(plan_first).to_have_accessible_name("Plan first")
    plan_first.click()
    expect(plan_first).to_have_attribute("aria-pressed", "true")
    chat.send(GOAL)
    expect(plan_first).to_have_attribute("aria-pressed", "false")
    card = chat.by_id("agent-plan-card")
    expect(card).to_have_attribute("data-status", "awaiting_approval")
    expect(card).to_contain_text(GOAL)
    expect(card).to_contain_text("4 tasks")

    # The panel loads the waiting plan: the DAG, its critical path, the controls.
    open_planner(chat)
    planner = chat.by_id("agent-planner")
    expect(chat.by_id("agent-plan-status")).to_have_attribute("data-status", "awaiting_approval")
    expect(chat.by_id("agent-plan-goal")).to_have_text(GOAL)
    expect(chat.by_id("agent-plan-node")).to_have_count(4)
    expect(chat.by_id("agent-plan-edge")).to_have_count(4)
    expect(chat.by_id("agent-plan-critical")).to_have_count(1)
    critical = planner.locator('[data-testid="agent-plan-node"][data-critical="true"]')
    expect(critical).to_have_count(3)
    assert sorted(critical.evaluate_all("els => els.map(e => e.dataset.task)")) == ["t1", "t2", "t4"]
    critical_edges = planner.locator('[data-testid="agent-plan-edge"][data-critical="true"]')
    expect(critical_edges).to_have_count(2)
    for test_id, name in [
        ("agent-plan-approve", "Approve the plan and run it"),
        ("agent-plan-edit", "Edit the plan"),
        ("agent-plan-pause", "Pause the plan"),
        ("agent-plan-cancel", "Cancel the plan"),
    ]:
        expect(chat.by_id(test_id)).to_have_accessible_name(name)
    expect(chat.by_id("agent-plan-pause")).to_be_disabled()
    expect(node(chat, "t3")).to_have_accessible_name("Task t3: Summarise by month, pending")

    # Edit before approving: rename a task and add one after t2.
    chat.by_id("agent-plan-edit").click()
    chat.page.get_by_label("Title of task t3").fill("Summarise by month and quarter")
    chat.page.get_by_label("Title of the new task").fill("Check the totals")
    chat.page.get_by_label("Description of the new task").fill("Add up the amounts per region.")
    chat.page.get_by_label("The new task depends on t2").check()
    chat.by_id("agent-plan-add").click()
    expect(chat.by_id("agent-plan-edit-task")).to_have_count(5)
    chat.by_id("agent-plan-save").click()
    expect(chat.by_id("agent-plan-node")).to_have_count(5)
    expect(node(chat, "t5")).to_have_accessible_name(re.compile(r"^Task t5: Check the totals, pending"))
    expect(node(chat, "t3")).to_contain_text("Summarise by month and")
    expect(chat.by_id("agent-plan-edge")).to_have_count(5)

    # Approve; pause while t1 runs, skip t5 meanwhile, resume.
    record_node_states(chat)
    chat.by_id("agent-plan-approve").click()
    expect(chat.by_id("agent-plan-status")).to_have_attribute("data-status", "running")
    expect(chat.by_id("agent-plan-approve")).to_have_count(0)
    expect(node(chat, "t1")).to_have_attribute("data-state", "running")
    chat.by_id("agent-plan-pause").click()
    expect(chat.by_id("agent-plan-status")).to_have_attribute("data-status", "paused")
    node(chat, "t5").click()
    details = chat.by_id("agent-task-details")
    expect(details).to_have_attribute("data-task", "t5")
    expect(chat.by_id("agent-task-retry")).to_have_accessible_name("Retry task t5")
    expect(chat.by_id("agent-task-retry")).to_be_disabled()
    chat.by_id("agent-task-skip").click()
    expect(node(chat, "t5")).to_have_attribute("data-state", "skipped")
    expect(node(chat, "t2")).to_have_attribute("data-state", "pending")  # nothing new starts while paused
    resume = chat.by_id("agent-plan-resume")
    expect(resume).to_have_accessible_name("Resume the plan")
    resume.click()
    expect(chat.by_id("agent-plan-status")).to_have_attribute("data-status", "done", timeout=60_000)

    # Every task ran and ended done (t5 was skipped), and the panel showed each one running.
    for task in ("t1", "t2", "t3", "t4"):
        expect(node(chat, task)).to_have_attribute("data-state", "done")
    states = chat.page.evaluate("window.__nodeStates")
    for task in ("t1", "t2", "t3", "t4"):
        assert "running" in states[task] and states[task][-1] == "done", states
    assert states["t5"][-1] == "skipped", states
    expect(chat.by_id("agent-plan-progress")).to_have_attribute("aria-valuenow", "5")

    # A task's transcript: its answer and its tool call with the result.
    node(chat, "t1").click()
    transcript = chat.by_id("agent-task-transcript")
    expect(transcript).to_be_visible()
    tool = transcript.locator('[data-testid="agent-tool-card"][data-tool="file_read"]')
    expect(tool).to_have_attribute("data-status", "done")
    expect(transcript.locator('[data-testid="agent-message"][data-role="assistant"]').last).to_contain_text(
        "t1 finished: read sales.csv"
    )
    expect(chat.by_id("agent-task-time")).to_contain_text(re.compile(r"^est .+ · took .+"))
    expect(chat.by_id("agent-task-summary")).to_contain_text("t1 finished")

    # The list view: estimate against actual for every task.
    chat.by_id("agent-plan-view-list").click()
    rows = chat.by_id("agent-plan-list").locator("tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.filter(has_text="Write the report")).to_contain_text("done")
    chat.by_id("agent-plan-view-graph").click()
    expect(chat.by_id("agent-plan-graph")).to_be_visible()

    # The chat shows the plan's card and the plan's summary, not the tasks' own turns.
    chat.wait_idle()
    expect(card).to_have_attribute("data-status", "done")
    answers = chat.panel.locator('[data-testid="agent-message"][data-role="assistant"]')
    expect(answers).to_have_count(1)
    expect(answers).to_contain_text("Plan finished: 4 of 5 tasks done.")
    chat.by_id("agent-plan-open").click()
    expect(planner).to_be_visible()
    expect(details).to_have_attribute("data-task", "t1")

    # For the picture: the planner gets the main area (file browser folded, notebook closed).
    chat.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    notebook_tab = chat.page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="t.ipynb")
    notebook_tab.locator(".lm-TabBar-tabCloseIcon").click()
    expect(notebook_tab).to_have_count(0)
    expect(chat.by_id("agent-plan-graph")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "planner_panel.png"))


# -- a task's approval, answered in the planner or in the chat ------------------------------------------------

# t1 then t2; each asks to run a shell command that leaves a file (shell_run asks before it runs).
MARKERS = {
    "t1": ("Write the approved marker", "approved-marker.txt"),
    "t2": ("Write the denied marker", "denied-marker.txt"),
}


class AskingPlanScript:
    """A plan of two tasks, t2 after t1, each calling shell_run to leave its marker file, then telling the
    first line of what the call returned."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        if body.get("response_format"):
            tasks = [
                {
                    "id": task_id,
                    "title": title,
                    "description": f"Run `echo {task_id} > {path}`.",
                    "depends_on": ["t1"] if task_id == "t2" else [],
                    "tools": ["shell_run"],
                    "notebooks": [],
                    "estimate_s": 5,
                    "acceptance": f"{path} exists",
                }
                for task_id, (title, path) in MARKERS.items()
            ]
            return Reply(text=json.dumps({"tasks": tasks}))
        task = task_of(body)
        last = body["messages"][-1]
        if last["role"] != "tool":
            return Reply(
                tool_calls=[ToolCallSpec("shell_run", {"command": f"echo {task} > {MARKERS[task][1]}"})]
            )
        return Reply(text=f"{task}: {last['content'].splitlines()[0]}")


def test_a_tasks_approval_is_answered_in_the_planner_or_in_any_collaborators_chat(
    lab: JupyterServer, lab_pages: Any, llm: ScriptedLLM
) -> None:
    llm.default = AskingPlanScript()
    ada = lab_pages.open()
    ada.open_chat()
    session = ada.new_session()
    ada.by_id("agent-plan-first").click()
    ada.send("Leave the two marker files")
    expect(ada.by_id("agent-plan-card")).to_have_attribute("data-status", "awaiting_approval")
    bo = lab_pages.open()  # a collaborator, on the same session
    bo.open_chat()
    bo.select_session(session)

    open_planner(ada)
    ada.by_id("agent-plan-approve").click()

    # t1 asks: its node says so, its details offer the answers, and every chat shows the card naming it.
    expect(node(ada, "t1")).to_have_attribute("data-asking", "true")
    expect(node(ada, "t1")).to_have_accessible_name(
        re.compile(r"^Task t1: .*, running, waiting for your approval")
    )
    for chat in (ada, bo):
        card = chat.panel.get_by_test_id("agent-approval")
        expect(card).to_have_attribute("data-task", "t1")
        expect(card.get_by_test_id("agent-approval-task")).to_have_text("Task t1 · Write the approved marker")
        expect(card).to_contain_text("echo t1 > approved-marker.txt")
    node(ada, "t1").click()
    details = ada.by_id("agent-task-details")
    asked = details.get_by_test_id("agent-approval")
    expect(asked).to_have_attribute("data-tool", "shell_run")
    lab_pages.snapshot(ada, "t1-asks")
    asked.get_by_test_id("agent-approve-once").click()

    # Answered in the planner: the question goes away everywhere, and the task runs its command.
    expect(asked).to_have_count(0)
    for chat in (ada, bo):
        expect(chat.panel.locator('[data-testid="agent-approval"][data-task="t1"]')).to_have_count(0)
    expect(node(ada, "t1")).to_have_attribute("data-state", "done")
    assert (lab.root / "approved-marker.txt").read_text() == "t1\n"

    # t2 asks next; the collaborator denies it in the chat: the command never runs.
    node(ada, "t2").click()
    expect(details).to_have_attribute("data-task", "t2")
    card = bo.panel.locator('[data-testid="agent-approval"][data-task="t2"]')
    expect(card.get_by_test_id("agent-approval-task")).to_have_text("Task t2 · Write the denied marker")
    call = card.get_attribute("data-call")
    expect(details.locator(f'[data-testid="agent-approval"][data-call="{call}"]')).to_have_count(1)
    lab_pages.snapshot(bo, "t2-asks")
    card.get_by_test_id("agent-deny").click()
    for shown in (bo.panel, ada.panel, details):
        expect(shown.locator(f'[data-testid="agent-approval"][data-call="{call}"]')).to_have_count(0)
    transcript = details.get_by_test_id("agent-task-transcript")
    denied = transcript.locator('[data-testid="agent-tool-card"][data-tool="shell_run"]').first
    expect(denied).to_have_attribute("data-status", "error")
    expect(denied).to_contain_text("Denied")
    expect(transcript).to_contain_text("the user denied this call to shell_run")
    assert not (lab.root / "denied-marker.txt").exists()

    # Without its call t2 did not do its work: it may be tried again (and ask again), or the plan ends.
    # Either way the plan can end here, and with it every question it left open, in every chat.
    asks_again = ada.panel.locator(
        f'[data-testid="agent-approval"][data-task="t2"]:not([data-call="{call}"])'
    )
    status = ada.by_id("agent-plan-status")
    expect(asks_again.or_(status.and_(ada.page.locator('[data-status="done"]')))).to_have_count(1)
    if asks_again.count():
        ada.by_id("agent-plan-cancel").click()
        expect(status).to_have_attribute("data-status", "cancelled")
    for chat in (ada, bo):
        expect(chat.panel.get_by_test_id("agent-approval")).to_have_count(0)
    assert not (lab.root / "denied-marker.txt").exists()
