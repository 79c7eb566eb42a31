"""``@`` mentions in real JupyterLab: a person runs a cell that defines a DataFrame, types ``@`` in the chat,
picks the variable from the kernel's completion and sends; the model reads the DataFrame's summary and the
message shows what was attached."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM
from tests.e2e.conftest import LabPages, notebook_json

pytestmark = pytest.mark.e2e

NOTEBOOK = "sales.ipynb"
SETUP = "import pandas as pd\nsales = pd.DataFrame({'region': ['North', 'South'], 'units': [12, 30]})"


def user_text(request: dict[str, Any]) -> str:
    content = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def test_at_variable_attaches_the_kernels_dataframe_to_the_prompt(lab_pages: LabPages, llm: ScriptedLLM):
    (lab_pages.lab.root / NOTEBOOK).write_text(json.dumps(notebook_json(SETUP, "sales.describe()")))
    chat = lab_pages.open(NOTEBOOK)
    # The person runs the cell that defines the DataFrame, once the notebook's kernel is up.
    kernel_status = chat.page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle")
    expect(kernel_status).to_be_visible(timeout=60_000)
    first = chat.notebook.locator(".jp-Cell").first
    first.locator(".jp-InputArea-editor").click()
    chat.page.keyboard.press("Shift+Enter")
    expect(first.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[1\]"), timeout=60_000)

    chat.open_chat()
    chat.new_session()
    chat.input.press_sequentially("Which region sold most in @sa")
    menu = chat.by_id("agent-mention-menu")
    option = menu.locator('[data-testid="agent-mention-option"][data-token="sales"]')
    expect(option).to_be_visible()
    expect(option).to_contain_text("pandas.DataFrame · 2 rows × 2 columns")
    expect(option).to_have_attribute("aria-selected", "true")
    lab_pages.snapshot(chat, "menu")
    chat.input.press("Enter")  # picks the highlighted variable; does not send
    expect(menu).to_have_count(0)
    expect(chat.input).to_have_value("Which region sold most in @sales ")

    llm.script(Reply(text="South sold the most: 30 units."))
    chat.input.press_sequentially("?")
    chat.input.press("Enter")
    expect(chat.assistant_text()).to_have_text("South sold the most: 30 units.")

    text = user_text(llm.requests[-1])
    assert "[Attached by the user: @sales]\nsales: pandas.DataFrame, 2 rows × 2 columns" in text, text
    assert "columns: region (" in text and "units (int64)" in text
    assert "North" in text and "South" in text  # its first rows
    assert text.endswith("Which region sold most in @sales ?")
    # The turn's context line shows what was attached, and what the model read of it.
    user = chat.page.locator('[data-testid="agent-message"][data-role="user"]').last
    chip = user.get_by_test_id("agent-attachment")
    expect(chip).to_have_count(1)
    expect(chip.locator("summary")).to_have_text("@sales")
    chip.locator("summary").click()
    expect(chip.locator(".jp-AgentChat-attachmentSummary")).to_contain_text("sales: pandas.DataFrame")
    # Nothing was written into the notebook: the second cell never ran.
    expect(chat.notebook.locator(".jp-Cell").nth(1).locator(".jp-InputPrompt")).to_have_text(
        re.compile(r"\[ \]")
    )
