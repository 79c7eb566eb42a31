"""Kernels for notebooks outside a Jupyter server: one jupyter_client kernel per notebook (for the CLI).

Implements the :class:`~jupyter_agent.collaboration.execution.KernelProvider` protocol that
:class:`~jupyter_agent.collaboration.execution.CellRunner` uses, as ``server/kernels.py`` does for the
server: a started client, a lock, interrupt and liveness; a dead kernel is restarted with a note.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_agent.errors import ToolError

log = logging.getLogger(__name__)


@dataclass
class LocalKernel:
    kernel_id: str
    client: Any  # AsyncKernelClient, channels started
    manager: Any  # AsyncKernelManager
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    note: str | None = None

    async def interrupt(self) -> None:
        await self.manager.interrupt_kernel()

    async def is_alive(self) -> bool:
        return bool(await self.manager.is_alive())


class LocalKernels:
    """Starts a kernel the first time a notebook runs a cell; :meth:`close` shuts them all down."""

    def __init__(self, root_dir: Path | str, ready_timeout: float = 60.0) -> None:
        self.root_dir = Path(os.path.realpath(root_dir))
        self.ready_timeout = ready_timeout
        self._kernels: dict[str, LocalKernel] = {}
        self._lock = asyncio.Lock()

    async def kernel_for(self, path: str, kernel_name: str | None) -> LocalKernel:
        async with self._lock:  # two cells of one notebook must not start two kernels
            handle = self._kernels.get(path)
            if handle is not None and await handle.is_alive():
                return handle
            if handle is not None:
                log.warning("The kernel of %s died; restarting it", path)
                handle.client.stop_channels()
                await handle.manager.restart_kernel(now=True)
                handle.client = await self._connect(handle.manager, path)
                handle.note = (
                    "The notebook's kernel had died and was restarted: variables defined before are gone."
                )
                return handle
            manager = await self._start(path, kernel_name)
            client = await self._connect(manager, path)
            handle = self._kernels[path] = LocalKernel(manager.kernel_id or path, client, manager)
            return handle

    async def running(self, path: str) -> LocalKernel | None:
        """The notebook's kernel if one was started (and is alive); None otherwise."""
        handle = self._kernels.get(path)
        return handle if handle is not None and await handle.is_alive() else None

    async def restart(self, path: str, kernel_name: str | None) -> LocalKernel:
        """Restart the notebook's kernel (started when there is none); waits for a cell of it that is
        running to end, and reconnects the handle in place."""
        handle = await self.kernel_for(path, kernel_name)
        async with handle.lock, self._lock:  # kernel_for never holds a handle's lock: no deadlock
            log.info("Restarting the kernel of %s", path)
            handle.client.stop_channels()
            await handle.manager.restart_kernel(now=True)
            handle.client = await self._connect(handle.manager, path)
            handle.note = None
            return handle

    async def _start(self, path: str, kernel_name: str | None) -> Any:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from jupyter_client.manager import AsyncKernelManager

        name = kernel_name or "python3"
        try:
            KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            log.warning("Kernel %r of %s is not installed; using python3", name, path)
            name = "python3"
        manager = AsyncKernelManager(kernel_name=name)
        cwd = (self.root_dir / path).parent
        log.info("Starting kernel %s for %s", name, path)
        await manager.start_kernel(cwd=str(cwd if cwd.is_dir() else self.root_dir))
        return manager

    async def _connect(self, manager: Any, path: str) -> Any:
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=self.ready_timeout)
        except RuntimeError as err:
            client.stop_channels()
            raise ToolError(f"the kernel of {path} did not become ready: {err}") from err
        return client

    async def close(self) -> None:
        handles, self._kernels = list(self._kernels.values()), {}
        for handle in handles:
            handle.client.stop_channels()
        await asyncio.gather(*(h.manager.shutdown_kernel(now=True) for h in handles), return_exceptions=True)
