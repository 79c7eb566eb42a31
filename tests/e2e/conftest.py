"""Browser tests: one JupyterLab per module, the scripted LLM, and headless Chromium through Playwright.

Playwright's sync API runs in plain (sync) tests; the servers live in a subprocess and a thread, so there is
no event loop to share. Every page opened through ``lab_pages`` is screenshotted into
``test-artifacts/e2e/<test-name>[-N].png`` when its test ends, pass or fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from jupyter_agent.local_model.runtimes import COMPILED_MODULES, TEST_CPU_FLAGS
from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import ScriptedLLM

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("JUPYTER_AGENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 900}
# Keeps the agent's WebSockets reachable from tests (``window.__agentSockets``, to drop them on purpose)
# and notes the highest event ``seq`` the page received on them (``window.__agentSeq``).
SOCKET_SPY = """
(() => {
  const Native = window.WebSocket;
  const sockets = (window.__agentSockets = []);
  window.__agentSeq = 0;
  class SpiedWebSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (!String(url).includes('/api/agent/')) return;
      sockets.push(this);
      this.addEventListener('message', m => {
        try {
          const seq = JSON.parse(m.data).seq;
          if (typeof seq === 'number' && seq > window.__agentSeq) window.__agentSeq = seq;
        } catch (e) {}
      });
    }
  }
  window.WebSocket = SpiedWebSocket;
})();
"""
NOTEBOOK = "t.ipynb"
# The machine is slow and shared: give the page time, but fail rather than hang.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)


def notebook_json(*sources: str) -> dict[str, Any]:
    """A notebook with a python3 kernelspec (without one, JupyterLab asks for a kernel in a dialog)."""
    cells = [
        {
            "cell_type": "code",
            "id": uuid.uuid4().hex[:8],
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        for source in sources
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def lab_config(base: Path, **agent: Any) -> dict[str, Any]:
    """Server config of the browser tests: no news toast, quick retries, bounded waits, and the repo's
    own build of the labextension (``jupyter_agent/labextension``) ahead of any installed copy."""
    settings_dir = base / "settings"
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    lab: dict[str, Any] = {"user_settings_dir": str(settings_dir)}
    build = REPO / "jupyter_agent" / "labextension"
    if (build / "package.json").exists():
        extensions = base / "labextensions"
        extensions.mkdir(exist_ok=True)
        link = extensions / json.loads((build / "package.json").read_text())["name"]
        if not link.exists():
            link.symlink_to(build, target_is_directory=True)
        lab["extra_labextensions_path"] = [str(extensions)]
    return {
        "LabApp": lab,
        "JupyterAgent": {
            "retry_backoff": 0.01,
            "request_timeout": 20.0,
            "chunk_timeout": 20.0,
            "approval_timeout": 120.0,
            "cell_timeout": 60.0,
            **agent,
        },
    }


def stand_in_model_server(folder: Path, server_code: str, env: pytest.MonkeyPatch) -> None:
    """Make ``server_code`` the embedded model's server for servers started under ``env``.

    It takes the compiled runtime's place (``python -m llama_cpp.server``, found on PYTHONPATH in ``folder``):
    the machine is made to look as if the prebuilt runtime could not run here (no AVX2), and the compiled
    one's server extras that are not installed are empty packages (the stand-in does not use them).
    """
    server = folder / "llama_cpp" / "server"
    server.mkdir(parents=True)
    (server.parent / "__init__.py").write_text("")
    (server / "__init__.py").write_text("")
    (server / "__main__.py").write_text(server_code)
    for extra in COMPILED_MODULES[1:]:
        if importlib.util.find_spec(extra) is None:
            (folder / extra).mkdir()
            (folder / extra / "__init__.py").write_text("")
    env.setenv("PYTHONPATH", str(folder))  # the lab and its model server inherit it
    env.setenv(TEST_CPU_FLAGS, "sse4_2 avx")


def launch_chromium(playwright: Any) -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is needed for the browser tests and was not found at {CHROMIUM}: "
            "run `make chromium` to install it (or set JUPYTER_AGENT_CHROMIUM).",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# -- the panel, as a person uses it ------------------------------------------------------------------


class ChatPage:
    """One JupyterLab page and its agent chat panel."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.panel = page.locator("#jupyter-agent-chat")
        self.input = page.get_by_test_id("agent-input")
        self.status = page.get_by_test_id("agent-status")
        self.sessions = page.get_by_test_id("agent-session-list")
        self.messages = page.get_by_test_id("agent-message")
        self.notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    def by_id(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    def assistant(self) -> Locator:
        return self.page.locator('[data-testid="agent-message"][data-role="assistant"]')

    def assistant_text(self) -> Locator:
        """The rendered text of the last assistant message."""
        return self.assistant().last.locator(".jp-AgentChat-markdown")

    def open_chat(self, via: str = "shortcut") -> None:
        """Open the panel with Accel+Shift+Y or the command palette; the input gets the focus."""
        if via == "shortcut":
            self.press_until("Control+Shift+Y", self.panel)
        else:
            palette = self.page.locator(".lm-CommandPalette-input")
            self.press_until("Control+Shift+C", palette)
            palette.fill("Open Agent Chat")
            self.page.locator(".lm-CommandPalette-item:visible", has_text="Open Agent Chat").first.click()
        expect(self.panel).to_be_visible()
        expect(self.input).to_be_focused()

    def press_until(self, keys: str, shown: Locator, attempts: int = 5) -> None:
        """Press a JupyterLab shortcut until ``shown`` is visible.

        Lab loads its key bindings from the settings after the page looks ready, so an early key press
        can go unheard; and they act only with the focus inside the shell (hence the click on the tab bar).
        """
        for _ in range(attempts - 1):
            if shown.is_visible():  # a slow answer to the previous press: pressing again could toggle it
                return
            self.page.locator("#jp-main-dock-panel").click(position={"x": 400, "y": 5})
            self.page.keyboard.press(keys)
            try:
                expect(shown).to_be_visible(timeout=3_000)
                return
            except AssertionError:
                continue
        self.page.locator("#jp-main-dock-panel").click(position={"x": 400, "y": 5})
        self.page.keyboard.press(keys)
        expect(shown).to_be_visible()

    def new_session(self) -> str:
        """Start a session with the + button; return its id once the panel is connected to it."""
        before = self.sessions.input_value()
        self.by_id("agent-new-session").click()
        expect(self.sessions).not_to_have_value(re.compile(rf"^({re.escape(before)})?$"))
        expect(self.status).to_have_attribute("data-state", "connected")
        return self.sessions.input_value()

    def select_session(self, session_id: str) -> None:
        """Pick a session in the list (focusing it first fetches sessions others created)."""
        self.sessions.focus()
        expect(self.sessions.locator(f'option[value="{session_id}"]')).to_have_count(1)
        self.sessions.select_option(session_id)
        expect(self.sessions).to_have_value(session_id)
        expect(self.status).to_have_attribute("data-state", "connected")

    def send(self, text: str) -> None:
        """Type a prompt and press Enter; wait until the panel shows it as a user message."""
        self.input.fill(text)
        self.input.press("Enter")
        expect(self.page.locator('[data-testid="agent-message"][data-role="user"]').last).to_have_text(
            re.compile(re.escape(text))
        )

    def wait_idle(self) -> None:
        """The turn is over: the Send button is back."""
        expect(self.by_id("agent-send")).to_be_visible()
        expect(self.by_id("agent-stop")).to_have_count(0)

    def record_texts(self) -> None:
        """Record (in the page) each distinct text the last assistant message shows, and its streaming flag."""
        self.page.evaluate(
            """selector => {
                const seen = (window.__seenTexts = []);
                window.__sawStreaming = false;
                const look = () => {
                    const all = document.querySelectorAll(selector);
                    const el = all[all.length - 1];
                    if (!el) return;
                    if (el.dataset.streaming === 'true') window.__sawStreaming = true;
                    const md = el.querySelector('.jp-AgentChat-markdown');
                    const text = md ? md.textContent.trim() : '';
                    if (text && seen[seen.length - 1] !== text) seen.push(text);
                };
                new MutationObserver(look).observe(document.body, {
                    subtree: true, childList: true, characterData: true, attributes: true
                });
            }""",
            '[data-testid="agent-message"][data-role="assistant"]',
        )

    def recorded_texts(self) -> list[str]:
        return self.page.evaluate("window.__seenTexts || []")

    def saw_streaming(self) -> bool:
        return self.page.evaluate("window.__sawStreaming === true")


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    """Replaces pytest-jupyter's autouse loop fixture, which would take Playwright's loop and close it."""
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """Replaces pytest-jupyter's: no Jupyter server runs in this process (JupyterLab is a subprocess)."""
    yield


@pytest.fixture(scope="module")
def lab(
    scripted_llm_server: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """JupyterLab with the agent, pointed at the scripted LLM; ``t.ipynb`` in its root."""
    config = lab_config(tmp_path_factory.mktemp("lab"))
    with JupyterServer(llm_base_url=scripted_llm_server.base_url, app="jupyterlab", config=config) as srv:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class LabPages:
    """Opens JupyterLab pages, each in its own browser context (its own person, cookies and storage)."""

    def __init__(self, browser: Browser, lab: JupyterServer, name: str) -> None:
        self.browser, self.lab, self.name = browser, lab, name
        self.pages: list[ChatPage] = []

    def open(self, path: str = NOTEBOOK) -> ChatPage:
        """A fresh context on ``lab/tree/<path>`` in a workspace of its own; returns once the lab is up."""
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(SOCKET_SPY)
        page = context.new_page()
        # Lab's own dialogs that a slow machine or an offline test brings up: answer them and go on.
        loading = page.locator(".jp-Dialog", has_text="taking some time to load")
        page.add_locator_handler(loading, lambda d: d.get_by_role("button", name="Continue waiting").click())
        lost = page.locator(".jp-Dialog", has_text="Server Connection Error")
        page.add_locator_handler(lost, lambda d: d.get_by_role("button", name="Close").click())
        chat = ChatPage(page)
        self.pages.append(chat)
        workspace = f"e2e-{uuid.uuid4().hex[:8]}"
        page.goto(self.lab.url(f"lab/workspaces/{workspace}/tree/{path}?token={self.lab.token}"))
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
        if path.endswith(".ipynb"):
            expect(chat.notebook.locator(".jp-Cell").first).to_be_visible(timeout=60_000)
        expect(chat.status).to_have_attribute("data-state", "connected")
        return chat

    def snapshot(self, chat: ChatPage, label: str) -> None:
        """An extra screenshot in the middle of a test: ``<test-name>-<label>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chat.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"))

    def screenshot_all(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, chat in enumerate(self.pages):
            suffix = "" if i == 0 else f"-{i + 1}"
            try:
                chat.page.screenshot(path=str(ARTIFACTS / f"{self.name}{suffix}.png"))
            except Exception as err:  # a crashed page must not hide the test's own failure
                print(f"screenshot of page {i + 1} failed: {err}")

    def close(self) -> None:
        for chat in self.pages:
            try:
                chat.context.close()
            except Exception:
                pass


@pytest.fixture
def lab_pages(browser: Browser, lab: JupyterServer, llm: ScriptedLLM, request: pytest.FixtureRequest):
    """Open pages with ``lab_pages.open()``; all of them are screenshotted and closed after the test."""
    pages = LabPages(browser, lab, re.sub(r"[^\w.-]+", "_", request.node.name))
    yield pages
    pages.screenshot_all()
    pages.close()


@pytest.fixture
def chat(lab_pages: LabPages) -> ChatPage:
    """One page on ``t.ipynb`` with the chat panel open on a new session."""
    page = lab_pages.open()
    page.open_chat()
    page.new_session()
    return page
