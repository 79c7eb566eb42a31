"""The Agent Usage panel in real JupyterLab: chat turns with tool calls (one failing) against the scripted model,
then the panel opened from the command palette shows their totals, tool bars and latency, follows a new turn
live without blanking, shows the server's message for a bad period and empty charts for a period without use."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, expect

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.e2e.conftest import ChatPage, LabPages

pytestmark = pytest.mark.e2e

# Counts, in the page, the times the report (totals and charts) left the panel after it first showed.
WATCH_REPORT = """() => {
    window.__reportGone = 0;
    let shown = false;
    new MutationObserver(() => {
        const present = !!document.querySelector('.jp-agent-usage .jp-agent-usage-report');
        if (present) shown = true;
        else if (shown) window.__reportGone += 1;
    }).observe(document.body, { subtree: true, childList: true });
}"""


class UsagePage:
    """The Agent Usage panel of a page."""

    def __init__(self, chat: ChatPage) -> None:
        self.page = chat.page
        self.panel = chat.page.locator(".jp-agent-usage")
        self.since = self.panel.locator('.jp-agent-usage-range[data-bound="since"]')
        self.until = self.panel.locator('.jp-agent-usage-range[data-bound="until"]')
        self.error = self.panel.locator(".jp-agent-usage-error")
        self.cost_chart = self.panel.locator(".jp-agent-usage-cost-chart")
        self.tools_chart = self.panel.locator(".jp-agent-usage-tools-chart")
        self.latency_chart = self.panel.locator(".jp-agent-usage-latency-chart")

    def figure(self, key: str) -> Locator:
        return self.panel.locator(f'.jp-agent-usage-totals [data-metric="{key}"] .jp-agent-usage-figureValue')

    def tool(self, name: str) -> Locator:
        return self.tools_chart.locator(f'.jp-agent-usage-tool[data-tool="{name}"]')

    def day_bars(self) -> Locator:
        """The drawn segments of the per-day charts (one per person and day with use)."""
        return self.cost_chart.locator("rect[data-user]")


def open_usage_from_palette(chat: ChatPage) -> UsagePage:
    palette = chat.page.locator(".lm-CommandPalette-input")
    chat.press_until("Control+Shift+C", palette)
    palette.fill("Agent Usage")
    chat.page.locator(".lm-CommandPalette-item:visible", has_text="Agent Usage").first.click()
    usage = UsagePage(chat)
    expect(usage.panel).to_be_visible()
    return usage


def run_turn(chat: ChatPage, prompt: str, answer: str) -> None:
    chat.send(prompt)
    expect(chat.assistant_text()).to_have_text(answer)
    chat.wait_idle()


def test_usage_panel_shows_the_turns_and_follows_them_live(
    lab: JupyterServer, lab_pages: LabPages, chat: ChatPage, llm: ScriptedLLM
) -> None:
    (lab.root / "notes.txt").write_text("42\n")
    llm.script(
        Reply(
            tool_calls=[
                ToolCallSpec("file_read", {"path": "notes.txt"}),
                ToolCallSpec("file_list", {"path": "."}),
            ]
        ),
        Reply(text="The notes say 42."),
        Reply(tool_calls=[ToolCallSpec("file_read", {"path": "missing.txt"})]),
        Reply(text="There is no missing.txt."),
        Reply(tool_calls=[ToolCallSpec("file_read", {"path": "notes.txt"})]),
        Reply(text="Still 42."),
    )
    run_turn(chat, "What do my notes say?", "The notes say 42.")
    run_turn(chat, "Read missing.txt", "There is no missing.txt.")
    run_turn(chat, "And now?", "Still 42.")

    usage = open_usage_from_palette(chat)
    expect(usage.panel).to_have_attribute("data-scope", "all")  # the only person here may see everyone
    expect(usage.figure("turns")).to_have_text("3")
    expect(usage.figure("sessions")).to_have_text("1")
    expect(usage.figure("tool_calls")).to_have_text("4")
    expect(usage.figure("error_rate")).to_have_text("25%")
    expect(usage.figure("cost")).to_have_text("cost unknown")  # the scripted model has no price
    read, listed = usage.tool("file_read"), usage.tool("file_list")
    expect(read).to_have_attribute("data-calls", "3")
    expect(read).to_have_attribute("data-errors", "1")
    expect(read).to_contain_text("3 calls · 1 failed")
    expect(listed).to_have_attribute("data-calls", "1")
    expect(listed).to_have_attribute("data-errors", "0")
    assert float(read.locator(".jp-agent-usage-bar-error").get_attribute("width")) > 0
    assert float(listed.locator(".jp-agent-usage-bar-error").get_attribute("width")) == 0
    table_row = usage.panel.locator('.jp-agent-usage-table tr[data-tool="file_read"] td')
    expect(table_row).to_have_text(
        ["file_read", "3", "1", "33%", re.compile(r"\d+ ms"), re.compile(r"\d"), re.compile(r"\d")]
    )
    expect(usage.day_bars()).not_to_have_count(0)
    expect(usage.latency_chart.locator('.jp-agent-usage-bucket:not([data-count="0"])')).not_to_have_count(0)
    expect(usage.latency_chart.locator(".jp-agent-usage-marker-p50")).to_have_count(1)
    expect(usage.latency_chart.locator(".jp-agent-usage-marker-p95")).to_have_count(1)
    lab_pages.snapshot(chat, "three-turns")
    usage.latency_chart.scroll_into_view_if_needed()
    lab_pages.snapshot(chat, "latency")

    # Live: a turn made while the panel is shown appears within a poll, and the report never leaves the screen.
    chat.page.evaluate(WATCH_REPORT)
    llm.script(Reply(tool_calls=[ToolCallSpec("file_list", {"path": "."})]), Reply(text="Listed."))
    run_turn(chat, "List the files", "Listed.")
    expect(usage.figure("turns")).to_have_text("4", timeout=25_000)
    expect(usage.tool("file_list")).to_have_attribute("data-calls", "2")
    assert chat.page.evaluate("window.__reportGone") == 0

    # A period that ends before it starts: the server's message, in the panel.
    usage.until.fill("2020-01-31")
    expect(usage.error).to_have_text("since must not be after until")
    # A period without use: zeros and empty charts.
    usage.since.fill("2020-01-01")
    expect(usage.error).to_have_count(0)
    expect(usage.figure("turns")).to_have_text("0")
    expect(usage.figure("tool_calls")).to_have_text("0")
    expect(usage.cost_chart).to_have_attribute("data-empty", "true")
    days = usage.cost_chart.locator('svg[data-metric="tokens"] .jp-agent-usage-day')
    expect(days).to_have_count(31)  # every day of January, as a zero
    expect(usage.day_bars()).to_have_count(0)
    expect(usage.tools_chart.locator(".jp-agent-usage-tool")).to_have_count(0)
    expect(usage.tools_chart).to_contain_text("No tool calls in this period")
    expect(usage.latency_chart.locator('.jp-agent-usage-bucket:not([data-count="0"])')).to_have_count(0)
    expect(usage.latency_chart.locator(".jp-agent-usage-marker")).to_have_count(0)
    lab_pages.snapshot(chat, "empty-period")

    # Back to a quick range: today's use again.
    usage.panel.locator('.jp-agent-usage-quick[data-days="7"]').click()
    expect(usage.figure("turns")).to_have_text("4")
    expect(usage.panel.locator('.jp-agent-usage-quick[data-days="7"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(usage.day_bars()).to_have_count(1)  # today's tokens (no price: no cost bar)


def test_usage_panel_is_in_the_view_menu(lab_pages: LabPages) -> None:
    chat = lab_pages.open()
    chat.page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    chat.page.locator(".lm-Menu-item:visible", has_text="Agent Usage").click()
    expect(chat.page.locator(".jp-agent-usage")).to_be_visible()
    expect(chat.page.locator(".jp-agent-usage-totals")).to_be_visible()
