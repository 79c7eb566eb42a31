"""The chat panel in real JupyterLab, driven in headless Chromium against the scripted LLM.

Each test opens its own browser context(s) on the module's JupyterLab and starts a new chat session;
screenshots land in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Fail, Reply, ScriptedLLM, Stall, ToolCallSpec
from tests.e2e.conftest import NOTEBOOK, ChatPage, LabPages

pytestmark = pytest.mark.e2e

STREAMED = (
    "Here is a streamed answer from the scripted model. It arrives in small pieces, "
    "one after another, so the panel has to show it while it grows."
)


def tool_card(chat: ChatPage, tool: str):
    return chat.page.locator(f'[data-testid="agent-tool-card"][data-tool="{tool}"]')


def inserted_cell_id(body: dict[str, Any]) -> str:
    """The id of the cell notebook_insert_cell created, from the tool message the model reads."""
    for message in reversed(body["messages"]):
        if message.get("role") == "tool":
            found = re.search(r"Inserted code cell (\S+) at index", str(message.get("content")))
            if found:
                return found.group(1)
    raise AssertionError(f"no notebook_insert_cell result in {body['messages']!r}")


def token_events(lab: JupyterServer, session_id: str) -> int:
    events = lab.api("GET", f"api/agent/sessions/{session_id}/events?after=0")["events"]
    return sum(1 for e in events if e["type"] == "token")


def test_prompt_streams_answer(lab_pages: LabPages, llm: ScriptedLLM) -> None:
    llm.chunk_delay = 0.08
    llm.script(Reply(text=STREAMED, chunk_size=6))
    chat = lab_pages.open()
    chat.open_chat(via="shortcut")
    chat.new_session()
    expect(chat.by_id("agent-context")).to_have_attribute("data-notebook", NOTEBOOK)

    chat.record_texts()
    chat.send("Explain this notebook")
    expect(chat.assistant_text()).to_have_text(STREAMED)
    expect(chat.assistant().last).to_have_attribute("data-streaming", "false")
    chat.wait_idle()

    seen = chat.recorded_texts()
    partial = [t for t in seen if t != STREAMED]
    assert chat.saw_streaming(), "the assistant message never had data-streaming=true"
    assert len(partial) >= 2, f"the answer did not grow in steps: {seen}"
    assert all(STREAMED.startswith(t) for t in partial), partial
    assert "Explain this notebook" in str(llm.requests[0]["messages"])
    expect(chat.input).to_have_value("")
    expect(chat.by_id("agent-usage").last).to_contain_text("tokens")


def test_agent_cell_runs_in_open_notebook(lab_pages: LabPages, llm: ScriptedLLM) -> None:
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": NOTEBOOK, "source": "print(6*7)"})]),
        lambda body: Reply(
            tool_calls=[
                ToolCallSpec("notebook_run_cell", {"path": NOTEBOOK, "cell_id": inserted_cell_id(body)})
            ]
        ),
        Reply(text="The new cell printed 42."),
    )
    chat = lab_pages.open()
    chat.open_chat(via="palette")
    chat.new_session()
    cells = chat.notebook.locator(".jp-Cell")
    before = cells.count()

    chat.send("Add a cell that prints 6*7 and run it")
    insert, run = tool_card(chat, "notebook_insert_cell"), tool_card(chat, "notebook_run_cell")
    expect(insert).to_have_attribute("data-status", "done")
    expect(run).to_have_attribute("data-status", "done")
    expect(chat.assistant_text()).to_have_text("The new cell printed 42.")
    chat.wait_idle()

    expect(cells).to_have_count(before + 1)
    new_cell = cells.filter(has_text="print(6*7)")
    expect(new_cell).to_have_count(1)
    expect(new_cell.locator(".jp-OutputArea-output")).to_have_text("42")

    # Make another cell active, then follow the card's link back to the agent's cell.
    cells.first.locator(".jp-InputPrompt").click()
    expect(cells.first).to_have_class(re.compile(r"\bjp-mod-active\b"))
    run.get_by_test_id("agent-open-cell").click()
    expect(new_cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
    expect(chat.notebook.locator(".jp-Cell.jp-mod-active")).to_have_count(1)


def test_approval_allow_once_then_deny(lab: JupyterServer, lab_pages: LabPages, chat: ChatPage, llm) -> None:
    allowed, denied = "echo allowed > allowed.txt", "echo denied > denied.txt"
    llm.script(
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": allowed})]),
        Reply(text="Created allowed.txt."),
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": denied})]),
        Reply(text="Understood, I did not create it."),
    )
    approval = chat.by_id("agent-approval")
    cards = tool_card(chat, "shell_run")

    chat.send("Create allowed.txt")
    expect(approval).to_be_visible()
    expect(approval).to_have_attribute("data-tool", "shell_run")
    expect(approval).to_contain_text("The agent wants to run shell_run")
    expect(approval.locator("pre")).to_contain_text(allowed)
    expect(cards.first).to_have_attribute("data-status", "waiting_approval")
    lab_pages.snapshot(chat, "asking")
    assert not (lab.root / "allowed.txt").exists()
    approval.get_by_test_id("agent-approve-once").click()
    expect(cards.first).to_have_attribute("data-status", "done")
    expect(cards.first).to_contain_text("Allowed once")
    expect(approval).to_have_count(0)
    expect(chat.assistant_text()).to_have_text("Created allowed.txt.")
    chat.wait_idle()
    assert (lab.root / "allowed.txt").read_text() == "allowed\n"

    chat.send("Now create denied.txt")
    expect(approval).to_be_visible()
    expect(approval.locator("pre")).to_contain_text(denied)
    approval.get_by_test_id("agent-deny").click()
    expect(cards.nth(1)).to_have_attribute("data-status", "error")
    expect(cards.nth(1)).to_contain_text("Denied")
    expect(approval).to_have_count(0)
    expect(chat.assistant_text()).to_have_text("Understood, I did not create it.")
    chat.wait_idle()
    assert not (lab.root / "denied.txt").exists()


def test_two_people_share_a_session(lab_pages: LabPages, llm: ScriptedLLM) -> None:
    llm.chunk_delay = 0.08
    llm.script(Reply(text=STREAMED, chunk_size=6))
    alice = lab_pages.open()
    alice.open_chat()
    session_id = alice.new_session()
    bob = lab_pages.open()
    bob.open_chat()
    bob.select_session(session_id)
    bob.record_texts()
    alice.record_texts()

    prompt = "What does this notebook do?"
    alice.send(prompt)
    expect(bob.page.locator('[data-testid="agent-message"][data-role="user"]')).to_contain_text(prompt)
    expect(bob.assistant_text()).to_have_text(STREAMED)
    expect(alice.assistant_text()).to_have_text(STREAMED)
    alice.wait_idle()
    bob.wait_idle()
    for person in (alice, bob):
        assert person.saw_streaming(), "the answer was not shown streaming"
        assert len([t for t in person.recorded_texts() if t != STREAMED]) >= 2, person.recorded_texts()

    # A late joiner, on another session at first, picks the shared one and sees its history.
    carol = lab_pages.open()
    carol.open_chat()
    carol.new_session()
    expect(carol.messages).to_have_count(0)
    carol.select_session(session_id)
    expect(carol.messages).to_have_count(2)
    expect(carol.messages.first).to_contain_text(prompt)
    expect(carol.assistant_text()).to_have_text(STREAMED)
    expect(carol.by_id("agent-usage")).to_have_count(1)


def test_dropped_connection_resumes_without_gap(
    lab: JupyterServer, lab_pages: LabPages, chat: ChatPage, llm: ScriptedLLM
) -> None:
    text = " ".join(f"w{i:03d}" for i in range(150))  # one word per chunk
    llm.chunk_delay = 0.05
    llm.script(Reply(text=text))
    session_id = chat.sessions.input_value()
    chat.page.evaluate(
        """() => {
            const status = document.querySelector('[data-testid="agent-status"]');
            const states = (window.__states = [status.dataset.state]);
            new MutationObserver(() => states.push(status.dataset.state))
                .observe(status, { attributes: true, attributeFilter: ['data-state'] });
        }"""
    )
    chat.send("Count slowly")
    expect(chat.assistant_text()).to_contain_text("w005")

    # Cut the page off the network and drop its agent socket mid-stream: offline, the close handshake
    # cannot finish, so the page hears nothing more until it is back online.
    chat.context.set_offline(True)
    chat.page.evaluate("window.__agentSockets.forEach(s => s.close())")
    seen_seq = chat.page.evaluate("window.__agentSeq")
    missed_from = token_events(lab, session_id)
    deadline = time.monotonic() + 20
    while token_events(lab, session_id) < missed_from + 10:  # the server streams on meanwhile
        assert time.monotonic() < deadline, "the server did not stream on while the page was offline"
        chat.page.wait_for_timeout(100)
    assert chat.page.evaluate("window.__agentSeq") == seen_seq, "the page still received events offline"
    assert token_events(lab, session_id) < len(text.split()), "the stream ended before the page came back"
    lab_pages.snapshot(chat, "offline")

    chat.context.set_offline(False)
    expect(chat.assistant_text()).to_have_text(text)
    chat.wait_idle()
    expect(chat.status).to_have_attribute("data-state", "connected")
    states = chat.page.evaluate("window.__states")
    assert "reconnecting" in states and states[-1] == "connected", states
    urls = chat.page.evaluate("window.__agentSockets.map(s => s.url)")
    assert any(f"after={seen_seq}" in url for url in urls[1:]), (seen_seq, urls)
    assert chat.assistant_text().inner_text().split() == text.split()
    expect(chat.messages).to_have_count(2)


def test_stop_ends_a_long_answer(chat: ChatPage, llm: ScriptedLLM) -> None:
    llm.script(
        Stall(seconds=60, after_text="Let me think about this for a long time"), Reply(text="Back again.")
    )
    chat.send("Think hard")
    expect(chat.assistant_text()).to_contain_text("Let me think")
    stop = chat.by_id("agent-stop")
    expect(stop).to_be_visible()
    stop.click()

    usage = chat.by_id("agent-usage").last
    expect(usage).to_have_attribute("data-reason", "cancelled")
    expect(usage).to_contain_text("Stopped")
    chat.wait_idle()
    expect(chat.assistant().last).to_have_attribute("data-streaming", "false")
    expect(chat.input).to_be_editable()
    chat.send("Are you there?")
    expect(chat.assistant_text()).to_have_text("Back again.")
    chat.wait_idle()


def test_provider_error_is_shown_with_hint(chat: ChatPage, llm: ScriptedLLM) -> None:
    llm.script(Fail(401, "Incorrect API key provided"))
    chat.send("Hello?")
    error = chat.by_id("agent-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("Incorrect API key provided")
    expect(error).to_contain_text(re.compile(r"check the API key", re.IGNORECASE))
    chat.wait_idle()
    expect(chat.input).to_be_editable()


def test_accessibility_names(chat: ChatPage, llm: ScriptedLLM) -> None:
    llm.script(Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "true"})]), Reply(text="Done."))
    chat.send("Run true")
    expect(chat.by_id("agent-approval")).to_be_visible()  # more buttons: Allow once, Always allow, Deny, Stop

    expect(chat.page.get_by_label("Message the agent")).to_have_attribute("data-testid", "agent-input")
    log = chat.panel.get_by_role("log")
    expect(log).to_have_count(1)
    expect(log).to_have_attribute("data-testid", "agent-messages")
    expect(chat.panel.get_by_role("combobox", name="Session")).to_have_count(1)
    expect(chat.panel.get_by_role("combobox", name="Model")).to_have_count(1)
    expect(chat.panel.get_by_role("combobox", name="Notebook the agent acts on")).to_have_count(1)

    buttons = chat.panel.locator("button")
    assert buttons.count() >= 8
    for i in range(buttons.count()):
        expect(buttons.nth(i)).to_have_accessible_name(re.compile(r"\S"))
    unnamed = chat.panel.evaluate(
        """panel => [...panel.querySelectorAll('button')]
            .filter(b => !((b.getAttribute('aria-label') || b.textContent || '').trim()))
            .map(b => b.outerHTML.slice(0, 120))"""
    )
    assert unnamed == []
    expect(chat.status).to_have_accessible_name(re.compile(r"Agent: connected"))

    chat.by_id("agent-deny").click()
    chat.wait_idle()
