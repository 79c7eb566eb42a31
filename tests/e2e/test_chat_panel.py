"""The chat panel in real JupyterLab, driven in headless Chromium against the scripted LLM.

Each test opens its own browser context(s) on the module's JupyterLab and starts a new chat session;
screenshots land in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from jupyter_agent.local_model.registry import get_spec
from jupyter_agent.local_model.weights import install_hint, missing_parts
from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Fail, Reply, ScriptedLLM, Stall, ToolCallSpec
from tests.e2e.conftest import (
    ARTIFACTS,
    NOTEBOOK,
    ChatPage,
    LabPages,
    lab_config,
    notebook_json,
    stand_in_model_server,
)

pytestmark = pytest.mark.e2e

STREAMED = (
    "Here is a streamed answer from the scripted model. It arrives in small pieces, "
    "one after another, so the panel has to show it while it grows."
)


@pytest.fixture(scope="module")
def lab(
    scripted_llm_server: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """The conftest's lab, with ``window.jupyterapp`` exposed so a test can raise Lab's own notifications."""
    config = lab_config(tmp_path_factory.mktemp("lab"))
    config["LabApp"]["expose_app_in_browser"] = True
    with JupyterServer(llm_base_url=scripted_llm_server.base_url, app="jupyterlab", config=config) as srv:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv


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


# -- what the agent is doing, from the moment Enter is pressed ------------------------------------------

#: Notes (in the page) when Enter is pressed in the chat input and when the activity line first shows each
#: of its texts, on the page's own clock (performance.now(), ms).
ACTIVITY_CLOCK = """() => {
    const seen = (window.__activitySeen = {});
    window.__enterAt = null;
    document.addEventListener('keydown', e => {
        if (e.key === 'Enter' && e.target.dataset.testid === 'agent-input') window.__enterAt = performance.now();
    }, true);
    const look = () => {
        const line = document.querySelector('[data-testid="agent-activity"] .jp-AgentChat-activityText');
        const status = document.querySelector('[data-testid="agent-status"]');
        const now = performance.now();
        if (line && !(line.textContent in seen)) seen[line.textContent] = now;
        if (status && status.dataset.activity && !('status: ' + status.dataset.activity in seen))
            seen['status: ' + status.dataset.activity] = now;
    };
    new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                       attributes: true});
}"""


def first_seen_ms(chat: ChatPage, text: str) -> float:
    """Milliseconds from Enter to the first activity text that starts with ``text``."""
    seen, enter = chat.page.evaluate("[window.__activitySeen, window.__enterAt]")
    return min(at for shown, at in seen.items() if shown.startswith(text)) - enter


def test_the_agent_shows_what_it_does_from_enter_until_the_first_token(
    chat: ChatPage, llm: ScriptedLLM, lab_pages: LabPages
) -> None:
    llm.script(Reply(text="The notebook sets x to 1.", delay=6.0))  # a model slow to read its prompt
    activity, status = chat.by_id("agent-activity"), chat.status
    timer = activity.locator(".jp-AgentChat-activityTime")
    chat.page.evaluate(ACTIVITY_CLOCK)

    chat.send("Explain this notebook")
    expect(activity).to_contain_text(re.compile(r"reading your request \(prompt ~[\d,]+ tokens\)"))
    expect(activity).to_have_attribute("data-phase", "prompt")
    expect(status).to_have_attribute("data-activity", re.compile(r"^reading your request \(prompt ~"))
    expect(status).to_contain_text(re.compile(r"reading your request \(prompt ~[\d,]+ tokens\) · \d+ s"))
    assert chat.assistant().count() == 0, "the answer started before the activity line showed"
    seq = chat.page.evaluate("window.__agentSeq")
    expect(timer).to_have_text(re.compile(r"^[2-5] s$"))  # the time goes on by itself: no event needed
    assert chat.page.evaluate("window.__agentSeq") == seq
    expect(status).to_contain_text(re.compile(r"· [2-5] s"))
    lab_pages.snapshot(chat, "reading")

    expect(chat.assistant_text()).to_have_text("The notebook sets x to 1.")
    chat.wait_idle()
    expect(activity).to_have_count(0)
    expect(status).to_have_attribute("data-activity", "")
    expect(status).not_to_contain_text("reading your request")

    to_line, to_status = first_seen_ms(chat, "reading your request"), first_seen_ms(chat, "status: reading")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "activity-timing.json").write_text(
        json.dumps({"enter_to_activity_line_ms": to_line, "enter_to_status_bar_ms": to_status})
    )
    print(
        f"Enter -> 'reading your request': {to_line:.0f} ms in the chat, {to_status:.0f} ms in the status bar"
    )
    assert 0 < to_line < 6000 and 0 < to_status < 6000  # well before the first token (6 s)


#: ``python -m llama_cpp.server`` as the local model server starts it, played by the scripted model: it reads
#: its prompt for 3 s, reporting its progress as llama.cpp's own server does, then gives a final answer.
PROGRESS_SERVER = """
import json, sys, threading
from jupyter_agent.testing.scripted_llm import PromptProgress, Reply, ScriptedLLM
args = sys.argv[1:]
llm = ScriptedLLM(port=int(args[args.index("--port") + 1]))
answer = json.dumps({"name": "final_answer", "arguments": {"text": "Read it all."}})
llm.default = Reply(text=answer, delay=3.0, prompt_progress=PromptProgress(total=1870, steps=6))
llm.start()
threading.Event().wait()
"""


@pytest.fixture
def progress_lab(tmp_path: Path) -> Iterator[JupyterServer]:
    """A lab on the embedded model, whose server (the scripted stand-in above) reports its prompt progress."""
    spec = get_spec("smollm2-135m")
    assert not missing_parts(spec), f"the stand-in needs {spec.name}'s weights: {install_hint(spec)}"
    with pytest.MonkeyPatch.context() as env:
        stand_in_model_server(tmp_path / "runtime", PROGRESS_SERVER, env)
        srv = JupyterServer(
            app="jupyterlab", config=lab_config(tmp_path / "lab", model="", local_model=spec.name)
        )
        srv.__enter__()
    try:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv
    finally:
        srv.__exit__(None, None, None)


def test_the_embedded_models_prompt_progress_shows_as_a_percentage(
    browser: Browser, progress_lab: JupyterServer, request: pytest.FixtureRequest
) -> None:
    pages = LabPages(browser, progress_lab, re.sub(r"[^\w.-]+", "_", request.node.name))
    try:
        chat = pages.open()
        chat.open_chat()
        chat.new_session()
        chat.page.evaluate(ACTIVITY_CLOCK)
        activity = chat.by_id("agent-activity")

        chat.send("Read this notebook")
        expect(activity).to_contain_text(re.compile(r"reading your request \(prompt 1,870 tokens, (\d\d)%\)"))
        expect(activity.locator(".jp-AgentChat-activityBar")).to_be_visible()
        expect(chat.status).to_contain_text(re.compile(r"reading your request \(prompt 1,870 tokens, \d+%\)"))
        pages.snapshot(chat, "progress")
        expect(chat.assistant_text()).to_have_text("Read it all.")
        chat.wait_idle()
        expect(activity).to_have_count(0)

        seen = chat.page.evaluate("Object.keys(window.__activitySeen)")
        percents = [int(m.group(1)) for t in seen if (m := re.search(r"1,870 tokens, (\d+)%", t))]
        assert len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100, seen
    finally:
        pages.screenshot_all()
        pages.close()


# -- Lab's own notifications --------------------------------------------------------------------------------


def test_lab_starts_without_the_news_question(lab: JupyterServer) -> None:
    """The package turns Lab's news question off for its environment (share/jupyter/lab/settings/overrides.d)."""
    settings = lab.api("GET", "lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"


NOTIFY = """message => window.jupyterapp.commands.execute('apputils:notify', {
    message, type: 'info',
    options: {autoClose: false, actions: [{label: 'Open privacy policy'}, {label: 'Yes'}, {label: 'No'}]}
})"""


def input_is_clickable(chat: ChatPage) -> None:
    """The first click at the input's centre lands in it: nothing (a toast) is on top of it."""
    chat.input.evaluate("input => input.blur()")
    expect(chat.input).not_to_be_focused()
    box = chat.input.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    hit = chat.page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.outerHTML.slice(0, 120)", [x, y])
    assert hit and 'data-testid="agent-input"' in hit, f"a click at the input's centre hits {hit}"
    chat.page.mouse.click(x, y)
    expect(chat.input).to_be_focused()


def test_lab_notifications_never_cover_the_chat_input(chat: ChatPage, lab_pages: LabPages) -> None:
    toast = chat.page.locator(".jp-toastContainer .Toastify__toast")
    chat.page.evaluate(NOTIFY, "Would you like to receive official Jupyter news?")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("official Jupyter news")
    chat.page.wait_for_timeout(800)  # Lab's toasts slide in: look once they are in place
    input_is_clickable(chat)
    chat.page.keyboard.type("hello")
    expect(chat.input).to_have_value("hello")
    toast_box, panel_box = toast.bounding_box(), chat.panel.bounding_box()
    assert toast_box and panel_box and toast_box["x"] + toast_box["width"] <= panel_box["x"] + 1, (
        toast_box,
        panel_box,
    )  # beside the panel, still there to be read
    lab_pages.snapshot(chat, "beside")

    # A window so narrow that a toast cannot pass beside the panel: the toasts go above the input.
    chat.page.set_viewport_size({"width": 700, "height": 800})
    chat.page.evaluate(NOTIFY, "Another notification")
    expect(toast).to_have_count(2)
    chat.page.wait_for_timeout(800)
    input_is_clickable(chat)
    input_box = chat.input.bounding_box()
    for i in range(2):
        box = toast.nth(i).bounding_box()
        assert box and input_box and box["y"] + box["height"] <= input_box["y"] + 1, (box, input_box)
    lab_pages.snapshot(chat, "above")
