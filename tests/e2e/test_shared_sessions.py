"""A session another process runs (a kernel's magics, a CLI run), seen in JupyterLab's chat.

The kernel is stood in for by a small process that writes to the server's ``agent.db`` through the
:class:`~jupyter_agent.store.Store` as a kernel does. The chat shows its session read-only and live; once the
process is gone, the turn it left open is marked interrupted and the input comes back.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import LabPages

pytestmark = pytest.mark.e2e

KERNEL = textwrap.dedent(
    """
    import sys, time, uuid
    from jupyter_agent.store import Store
    store = Store(sys.argv[1], role="kernel")
    session = uuid.uuid4().hex
    store.create_session(session, "kernel at work", None)
    def log(**event):
        store.append_event({"session": session, "ts": time.time(), "turn": "t1", **event})
    log(type="message", role="user", content="Summarise the sales table")
    print(session, flush=True)
    for line in sys.stdin:  # each line: the next part of the answer, as the kernel's turn streams it
        log(type="message", role="assistant", content=line.strip())
        print("ok", flush=True)
    """
)


@pytest.fixture
def kernel_writer(lab) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [sys.executable, "-c", KERNEL, str(lab.base / "agent.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield proc
    proc.kill()
    proc.wait()


def test_a_kernel_session_is_read_only_and_live_in_the_chat_until_the_kernel_ends(
    lab_pages: LabPages, kernel_writer: subprocess.Popen
) -> None:
    session_id = kernel_writer.stdout.readline().strip()
    chat = lab_pages.open()
    chat.press_until(
        "Control+Shift+Y", chat.panel
    )  # (no input to focus when the latest session is read-only)
    chat.select_session(session_id)

    notice = chat.by_id("agent-read-only")
    expect(notice).to_contain_text("being run by a kernel (pid")
    expect(chat.input).to_have_count(0)
    expect(chat.page.locator('[data-testid="agent-message"][data-role="user"]')).to_contain_text(
        "Summarise the sales table"
    )

    kernel_writer.stdin.write("Total sales: 42 units.\n")
    kernel_writer.stdin.flush()
    assert kernel_writer.stdout.readline().strip() == "ok"
    expect(chat.assistant_text()).to_have_text("Total sales: 42 units.")
    lab_pages.snapshot(chat, "read-only")

    kernel_writer.kill()
    kernel_writer.wait()
    expect(chat.page.locator('[data-testid="agent-error"][data-code="interrupted"]')).to_contain_text(
        "the kernel that ran this turn stopped"
    )
    expect(notice).to_have_count(0)
    expect(chat.input).to_be_visible()
