"""The Agent Browser panel in real JupyterLab: the agent's page live, a person taking over, tool thumbnails."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.e2e.conftest import ARTIFACTS, NOTEBOOK, ChatPage, lab_config, notebook_json

pytestmark = pytest.mark.e2e

# The button's place on the page, in CSS pixels: the test clicks it through the panel's picture.
BUTTON = {"left": 200, "top": 180, "width": 360, "height": 120}
PAGE = f"""<!doctype html><html lang="en"><head><title>Quarterly report</title>
<style>body {{ font: 24px sans-serif; background: #f4f7fb; }}
#go {{ position: absolute; left: {BUTTON["left"]}px; top: {BUTTON["top"]}px; width: {BUTTON["width"]}px;
       height: {BUTTON["height"]}px; font-size: 28px; }}</style></head>
<body><h1>Quarterly report</h1>
<button id="go" onclick="this.textContent = 'Approved by a person'">Approve</button>
</body></html>""".encode()


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def lab(
    scripted_llm_server: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory, site: str
) -> Iterator[JupyterServer]:
    """JupyterLab as in conftest, its browser allowed to reach the page server (loopback is refused)."""
    config = lab_config(tmp_path_factory.mktemp("lab"), allowed_networks=[site.removeprefix("http://")])
    with JupyterServer(llm_base_url=scripted_llm_server.base_url, app="jupyterlab", config=config) as srv:
        (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
        yield srv


def open_browser_panel(chat: ChatPage) -> None:
    palette = chat.page.locator(".lm-CommandPalette-input:visible")
    chat.press_until("Control+Shift+C", palette)
    palette.fill("Open Agent Browser")
    chat.page.locator(".lm-CommandPalette-item:visible", has_text="Open Agent Browser").first.click()
    expect(chat.by_id("agent-browser")).to_be_visible()


def click_on_page(chat: ChatPage, x: float, y: float) -> None:
    """Click the panel's picture where the page point (x, y) is shown (the picture keeps its aspect ratio)."""
    frame = chat.by_id("agent-browser-frame")
    box = frame.bounding_box()
    width, height = frame.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / width, box["height"] / height)
    left = (box["width"] - width * scale) / 2
    top = (box["height"] - height * scale) / 2
    frame.click(position={"x": left + x * scale, "y": top + y * scale})


def test_browser_panel_shows_the_agents_page_and_lets_a_person_take_over(
    chat: ChatPage, llm: ScriptedLLM, site: str
) -> None:
    url = f"{site}/report"
    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": url})]),
        Reply(tool_calls=[ToolCallSpec("browser_screenshot", {})]),
        Reply(text="The report is open."),
    )
    chat.send("Open the quarterly report")
    chat.wait_idle()

    card = chat.page.locator('[data-testid="agent-tool-card"][data-tool="browser_screenshot"]')
    thumbnail = card.get_by_test_id("agent-browser-thumbnail")
    expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(card.get_by_test_id("agent-browser-card-url")).to_have_text(url)
    expect(card.get_by_role("button", name="Enlarge the screenshot of Quarterly report")).to_be_visible()

    open_browser_panel(chat)
    frame = chat.by_id("agent-browser-frame")
    expect(frame).to_be_visible()
    chat.page.wait_for_function(
        "() => document.querySelector('[data-testid=agent-browser-frame]')?.naturalWidth > 0"
    )
    expect(chat.by_id("agent-browser-url")).to_have_value(url)
    expect(frame).to_have_accessible_name(re.compile("Quarterly report"))
    for test_id, name in [
        ("agent-browser-back", "Back"),
        ("agent-browser-forward", "Forward"),
        ("agent-browser-reload", "Reload"),
        ("agent-browser-url", "Address"),
        ("agent-browser-control", "Take control"),
    ]:
        expect(chat.by_id(test_id)).to_have_accessible_name(name)
    expect(chat.by_id("agent-browser-back")).to_be_disabled()

    control = chat.by_id("agent-browser-control")
    control.click()
    expect(control).to_have_attribute("aria-pressed", "true")
    expect(control).to_have_accessible_name("Hand back to the agent")
    expect(chat.by_id("agent-browser-reload")).to_be_enabled()
    seq = int(frame.get_attribute("data-seq"))
    click_on_page(chat, BUTTON["left"] + BUTTON["width"] / 2, BUTTON["top"] + BUTTON["height"] / 2)
    expect(frame).not_to_have_attribute("data-seq", str(seq))  # the picture follows the page

    control.click()
    expect(control).to_have_attribute("aria-pressed", "false")
    llm.script(
        Reply(tool_calls=[ToolCallSpec("browser_extract", {"format": "text"})]),
        Reply(text="Someone approved it."),
    )
    chat.send("What does the page say now?")
    chat.wait_idle()
    extract = chat.page.locator('[data-testid="agent-tool-card"][data-tool="browser_extract"]')
    expect(extract).to_have_attribute("data-status", "done")
    tool_message = next(m for m in reversed(llm.requests[-1]["messages"]) if m.get("role") == "tool")
    assert "Approved by a person" in str(tool_message["content"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "browser_panel.png"))
