"""The threads of a turn in a kernel: the engine's own event loop, and the kernel's main thread.

A kernel's cells run synchronously on the main thread, while ipykernel's asyncio loop runs on that same
thread. So the engine runs on one daemon thread with its own event loop (:class:`EngineThread`): the
kernel's loop is never blocked by the engine, nor the engine by user code, and there is no nested
``run_until_complete`` on a running loop. What must happen on the main thread (displays, and every
``python_run`` / ``python_variables`` call: user code runs where IPython runs it) is handed there through a
:class:`Channel`; :class:`MainThreadPython` is the tool service that does so, and owns SIGINT while a turn
runs (see :meth:`MainThreadPython.on_sigint`).
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)


class EngineThread:
    """The daemon thread whose event loop runs the engine (one per process)."""

    _instance: EngineThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="jupyter-agent-engine", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> EngineThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = EngineThread()
            return cls._instance

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        def safely() -> None:
            try:
                fn(*args)
            except Exception:
                log.warning("jupyter-agent: %s failed", getattr(fn, "__name__", fn), exc_info=True)

        self.loop.call_soon_threadsafe(safely)


class Channel:
    """Items for the main thread, put from any thread; read blocking or from the kernel's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._loop = loop
        self._wake = asyncio.Event() if loop is not None else None

    def put(self, *item: Any) -> None:
        self._items.put(item)
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the kernel's loop is closing
                self._loop.call_soon_threadsafe(self._wake.set)

    def get(self, timeout: float | None) -> tuple[Any, ...] | None:
        try:
            return self._items.get(timeout=timeout)
        except queue.Empty:
            return None

    async def aget(self, timeout: float | None) -> tuple[Any, ...] | None:
        assert self._wake is not None
        while True:
            try:
                return self._items.get_nowait()
            except queue.Empty:
                pass
            try:
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._wake.wait()
            except TimeoutError:
                return None
            self._wake.clear()


class MainThreadPython:
    """The ``"python"`` tool service: runs code and reads variables on the kernel's main thread."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.channel: Channel | None = None  # the channel of the cell driving the current turn
        self._running = threading.Lock()  # held while a job runs (the time limit interrupts only then)
        self.timed_out = False  # the time limit (not a person) interrupted the running job
        self._pending = False  # an interrupt arrived outside the user's code
        self.interrupt_requested = False  # a person interrupted the kernel between runs of code

    async def run(self, code: str, timeout: float) -> Any:
        from jupyter_agent.tools.python import execute_in_shell

        return await self._on_main(lambda: execute_in_shell(self.shell, code), timeout, interrupt=True)

    async def variables(self, names: list[str] | None) -> str:
        from jupyter_agent.tools.namespace import describe_listing

        return describe_listing(await self.listing(names))

    async def describe(self, _path: str | None, names: list[str] | None) -> str:
        """As the ``"variables"`` service (``notebook_variables``): the notebook's kernel is this one."""
        return await self.variables(names)

    async def listing(self, names: list[str] | None) -> dict[str, Any]:
        """The user's variables, summarised on the main thread (see :mod:`jupyter_agent.tools.namespace`)."""
        from jupyter_agent.tools.namespace import list_variables

        hidden = set(getattr(self.shell, "user_ns_hidden", {}))
        return await self._on_main(
            lambda: list_variables(self.shell.user_ns, names, hidden), 30, interrupt=False
        )

    async def _on_main(self, job: Callable[[], Any], timeout: float, interrupt: bool) -> Any:
        from jupyter_agent.errors import ToolError

        channel = self.channel
        if channel is None:
            raise ToolError("the cell that started this turn is gone; nothing can run in the kernel now")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        channel.put("call", job, future, interrupt)
        waiting = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except TimeoutError:
            if not interrupt:
                raise ToolError(f"the kernel did not answer within {timeout:g} s") from None
        # The time limit: interrupt the user's code (KeyboardInterrupt in it), then take its outcome.
        self.interrupt_running_code()
        try:
            outcome = await asyncio.wait_for(waiting, 15)
        except TimeoutError:
            raise ToolError(
                f"the code ran longer than {timeout:g} s and did not stop when interrupted"
            ) from None
        if getattr(outcome, "interrupted", False):
            outcome.error = f"TimeoutError: the code ran longer than {timeout:g} s and was interrupted"
        return outcome

    def interrupt_running_code(self) -> None:
        """KeyboardInterrupt in the user code running on the main thread (a real signal to that thread, so
        a blocking call such as ``time.sleep`` is interrupted too)."""
        if not self._running.locked():
            return
        self.timed_out = True
        if hasattr(signal, "pthread_kill"):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        else:
            _thread.interrupt_main(signal.SIGINT)

    # -- main thread --------------------------------------------------------------------------------
    def serve(self, job: Callable[[], Any], future: concurrent.futures.Future[Any], interrupt: bool) -> bool:
        """Run one job on the main thread (an interrupt meanwhile stops the user's code: see on_sigint).

        Returns True when the person interrupted it (not the time limit): the caller cancels the turn.
        """
        from jupyter_agent.errors import ToolError

        if not future.set_running_or_notify_cancel():
            return False
        self.timed_out = self._pending = False
        try:
            with self._running if interrupt else contextlib.nullcontext():
                result = job()
        except BaseException as err:  # even KeyboardInterrupt: it must never reach an event loop
            future.set_exception(ToolError(f"the kernel could not run it: {type(err).__name__}: {err}"))
            interrupted = isinstance(err, KeyboardInterrupt) or self._pending
            return interrupted and not self.timed_out
        future.set_result(result)
        stopped = bool(getattr(result, "interrupted", False)) or self._pending
        return stopped and not self.timed_out

    def on_sigint(self, _signum: int, frame: Any) -> None:
        """SIGINT during a turn (the front end installs this handler for the turn's duration).

        Between runs of code it only notes the interrupt: the front end cancels the turn at its next look
        (it looks at least every WAKE_INTERVAL). While the agent's code runs it raises KeyboardInterrupt if
        it lands in the user's code (under IPython's ``run_code``, which reports it as the run's error);
        anywhere else (our capture set-up or IPython's bookkeeping, which an exception would leave half
        done) it is delivered again shortly, until the code runs or has ended.
        """
        if not self._running.locked():
            if not self.timed_out:  # a time limit that fired as the code finished is no person's interrupt
                self.interrupt_requested = True
            return
        user_code = _run_code()
        while frame is not None and frame.f_code is not MainThreadPython.serve.__code__:
            if frame.f_code is user_code:  # run_code of this job's run_cell (not of the cell around us)
                raise KeyboardInterrupt
            frame = frame.f_back
        self._pending = True
        retry = threading.Timer(0.05, self._deliver_again)
        retry.daemon = True
        retry.start()

    @contextlib.contextmanager
    def handling_sigint(self) -> Iterator[None]:
        """Own SIGINT while a turn runs (main thread only; ipykernel's subshell threads get none)."""
        self.interrupt_requested = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        saved = signal.signal(signal.SIGINT, self.on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, saved)

    def _deliver_again(self) -> None:
        if self._running.locked() and hasattr(signal, "pthread_kill"):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def _run_code() -> Any:
    """The code object of IPython's ``run_code``: user code runs beneath it, inside its catch-all."""
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.run_code.__code__
