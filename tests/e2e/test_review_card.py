"""Review and undo of agent turns in real JupyterLab: the review card under a turn, its diff, undo and redo
of the turn in the open notebook, and review mode's pending cells with their Accept / Reject badges.

Each test writes a notebook of its own (fixed cell ids) into the module's lab, opens it, starts a new
chat session and lets the scripted model change it. Screenshots land in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.e2e.conftest import ARTIFACTS, ChatPage, LabPages

pytestmark = pytest.mark.e2e


def call(name: str, **args: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec(name, args)])


def write_notebook(lab: JupyterServer, cells: list[tuple[str, str]]) -> str:
    """A notebook of code cells with the given (id, source) in the lab's root, under a fresh name."""
    name = f"review-{uuid.uuid4().hex[:6]}.ipynb"
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "id": cell_id,
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for cell_id, source in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / name).write_text(json.dumps(notebook))
    return name


def open_on(lab_pages: LabPages, path: str) -> ChatPage:
    """A page on ``path`` with the chat panel open on a new session that acts on it."""
    chat = lab_pages.open(path)
    chat.open_chat()
    chat.new_session()
    expect(chat.by_id("agent-context")).to_have_attribute("data-notebook", path)
    return chat


def cells(chat: ChatPage) -> Locator:
    return chat.notebook.locator(".jp-Cell")


def expect_sources(chat: ChatPage, *sources: str) -> None:
    """The open notebook shows exactly these cells, in order, each editor with these lines."""
    shown = cells(chat)
    expect(shown).to_have_count(len(sources))
    for i, source in enumerate(sources):
        expect(shown.nth(i).locator(".jp-InputArea-editor .cm-line")).to_have_text(source.split("\n"))


def artifact(lab_pages: LabPages, label: str) -> Path:
    """Where an extra screenshot of the test goes: ``<test-name>-<label>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{lab_pages.name}-{label}.png"


def review_card(chat: ChatPage) -> Locator:
    return chat.panel.locator(".jp-agent-review-card").last


# -- live mode: the card, its diff, undo and redo -----------------------------------------------------


def test_review_card_shows_the_diff_and_undoes_and_redoes_the_turn(
    lab: JupyterServer, lab_pages: LabPages, llm: ScriptedLLM
) -> None:
    path = write_notebook(lab, [("c0", "a = 1\nb = 2\nc = 3"), ("c1", "print(a + b)")])
    chat = open_on(lab_pages, path)
    expect_sources(chat, "a = 1\nb = 2\nc = 3", "print(a + b)")
    llm.script(
        call("notebook_read", path=path),
        call("notebook_edit_cell", path=path, cell_id="c0", source="a = 1\nb = 20\nc = 3"),
        call("notebook_insert_cell", path=path, source="total = a + b + c", index=2),
        Reply(text="I changed b to 20 and added a cell with the total."),
    )

    chat.send("Set b to 20 and add a total")
    expect(chat.assistant_text()).to_have_text("I changed b to 20 and added a cell with the total.")
    chat.wait_idle()
    expect_sources(chat, "a = 1\nb = 20\nc = 3", "print(a + b)", "total = a + b + c")

    card = review_card(chat)
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-state", "applied")
    expect(card.locator(".jp-agent-review-summary")).to_have_text(re.compile(r"^2 cells changed, \+2 −1$"))
    expect(card.locator(".jp-agent-review-state")).to_have_text("applied")
    rows = card.locator(".jp-agent-review-row")
    expect(rows).to_have_count(2)
    edited = rows.filter(has=chat.page.locator(".jp-agent-review-name", has_text="· c0"))
    expect(edited).to_have_attribute("data-op", "edit")
    expect(edited).to_have_attribute("data-key", f"cell:{path}:c0")
    expect(rows.nth(1)).to_have_attribute("data-op", "insert")
    expect(card.locator(".jp-agent-review-redo")).to_have_count(0)

    # The edited cell's diff: the line the agent changed, old and new.
    expand = edited.locator(".jp-agent-review-expand")
    expect(expand).to_have_attribute("aria-expanded", "false")
    expand.click()
    expect(expand).to_have_attribute("aria-expanded", "true")
    diff = edited.locator(".jp-agent-review-diff")
    expect(diff).to_be_visible()
    expect(diff.locator(".jp-agent-review-line.jp-mod-del")).to_have_text(["-b = 2"])
    expect(diff.locator(".jp-agent-review-line.jp-mod-add")).to_have_text(["+b = 20"])
    expect(diff.locator(".jp-agent-review-line.jp-mod-context")).to_have_text([" a = 1", " c = 3"])
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(artifact(lab_pages, "card")))
    lab_pages.snapshot(chat, "diff")

    # Undo: the open notebook loses the inserted cell and gets its old line back.
    card.locator(".jp-agent-review-undo").click()
    expect(card.locator(".jp-agent-review-state")).to_have_text("undone")
    expect(card).to_have_attribute("data-state", "undone")
    expect_sources(chat, "a = 1\nb = 2\nc = 3", "print(a + b)")
    expect(rows.first).to_have_attribute("data-reverted", "true")
    expect(card.locator(".jp-agent-review-undo")).to_have_count(0)
    lab_pages.snapshot(chat, "undone")

    # Redo: both changes come back.
    card.locator(".jp-agent-review-redo").click()
    expect(card.locator(".jp-agent-review-state")).to_have_text("applied")
    expect_sources(chat, "a = 1\nb = 20\nc = 3", "print(a + b)", "total = a + b + c")
    expect(rows.first).to_have_attribute("data-reverted", "false")
    expect(card.locator(".jp-agent-review-undo")).to_be_visible()
    expect(card.locator(".jp-agent-review-redo")).to_have_count(0)


# -- review mode: pending cells, accepted or rejected --------------------------------------------------


def test_review_mode_marks_pending_cells_then_accept_one_and_reject_the_rest(
    lab: JupyterServer, lab_pages: LabPages, llm: ScriptedLLM
) -> None:
    path = write_notebook(lab, [("p0", "x = 1"), ("p1", "y = 1")])
    chat = open_on(lab_pages, path)
    toggle = chat.panel.locator(".jp-agent-edit-mode-toggle")
    expect(toggle).to_have_attribute("data-mode", "live")
    toggle.click()
    expect(toggle).to_have_attribute("data-mode", "review")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    session_id = chat.sessions.input_value()
    session = lab.api("GET", f"api/agent/sessions/{session_id}")
    assert session.get("edit_mode") == "review", session

    llm.script(
        call("notebook_read", path=path),
        call("notebook_insert_cell", path=path, source="z = x + y", index=2),
        call("notebook_edit_cell", path=path, cell_id="p0", source="x = 2"),
        call("notebook_edit_cell", path=path, cell_id="p1", source="y = 2"),
        Reply(text="I added z and set x and y to 2, for your review."),
    )
    chat.send("Add z and set x and y to 2")
    expect(chat.assistant_text()).to_have_text("I added z and set x and y to 2, for your review.")
    chat.wait_idle()

    # The changed cells are marked pending, each with its badge (the notebook shows the agent's text).
    expect_sources(chat, "x = 2", "y = 2", "z = x + y")
    pending = chat.notebook.locator(".jp-Cell.jp-agent-pending")
    expect(pending).to_have_count(3)
    first, second, inserted = cells(chat).nth(0), cells(chat).nth(1), cells(chat).nth(2)
    for cell, op in ((first, "edit"), (second, "edit"), (inserted, "insert")):
        expect(cell).to_have_class(re.compile(rf"\bjp-agent-pending-{op}\b"))
        expect(cell.locator(".jp-agent-pending-badge")).to_contain_text(f"Agent: pending {op}")
        expect(cell.locator(".jp-agent-pending-accept")).to_be_visible()
        expect(cell.locator(".jp-agent-pending-reject")).to_be_visible()

    card = review_card(chat)
    expect(card).to_have_attribute("data-state", "pending")
    expect(card.locator(".jp-agent-review-row[data-pending='true']")).to_have_count(3)
    expect(card.locator(".jp-agent-review-accept")).to_be_visible()
    expect(card.locator(".jp-agent-review-reject")).to_be_visible()
    expect(card.locator(".jp-agent-review-undo")).to_have_count(0)
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(artifact(lab_pages, "card")))
    lab_pages.snapshot(chat, "pending")

    def row(cell_id: str) -> Locator:
        return card.locator(f".jp-agent-review-row[data-key='cell:{path}:{cell_id}']")

    # Accept the edit of the first cell from its badge: its marker goes, the agent's text stays.
    first.locator(".jp-agent-pending-accept").click()
    expect(first).not_to_have_class(re.compile(r"\bjp-agent-pending\b"))
    expect(first.locator(".jp-agent-pending-badge")).to_have_count(0)
    expect(pending).to_have_count(2)
    expect(card).to_have_attribute("data-state", "partial")
    expect(row("p0")).to_have_attribute("data-pending", "false")
    expect(row("p0")).to_have_attribute("data-reverted", "false")
    expect_sources(chat, "x = 2", "y = 2", "z = x + y")

    # Reject the edit of the second cell from its badge: its old text comes back.
    second.locator(".jp-agent-pending-reject").click()
    expect(second).not_to_have_class(re.compile(r"\bjp-agent-pending\b"))
    expect(pending).to_have_count(1)
    expect_sources(chat, "x = 2", "y = 1", "z = x + y")
    expect(row("p1")).to_have_attribute("data-pending", "false")
    expect(row("p1")).to_have_attribute("data-reverted", "true")

    # Reject the rest (the inserted cell) from the card: the cell goes, the accepted edit stays.
    card.locator(".jp-agent-review-reject").click()
    expect(pending).to_have_count(0)
    expect(chat.notebook.locator(".jp-agent-pending-badge")).to_have_count(0)
    expect_sources(chat, "x = 2", "y = 1")
    expect(card.locator(".jp-agent-review-row[data-pending='true']")).to_have_count(0)
    expect(card.locator(".jp-agent-review-row[data-op='insert']")).to_have_attribute("data-reverted", "true")
    expect(card.locator(".jp-agent-review-accept")).to_have_count(0)
    expect(card.locator(".jp-agent-review-reject")).to_have_count(0)
    lab_pages.snapshot(chat, "decided")
