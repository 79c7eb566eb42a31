"""Kernels of the Jupyter server, found the way JupyterLab finds them: through the session manager."""

from __future__ import annotations

import asyncio
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any

from jupyter_core.utils import ensure_async

from jupyter_agent.errors import ToolError

log = logging.getLogger(__name__)

RESTARTED = "The notebook's kernel had died and was restarted: variables defined before are gone."


@dataclass
class ServerKernel:
    kernel_id: str
    client: Any
    manager: Any  # the server's MappingKernelManager
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    note: str | None = None  # something the person should hear about at the next run (a restart)
    died: bool = False  # set by the runner when the kernel died under it

    async def interrupt(self) -> None:
        await ensure_async(self.manager.interrupt_kernel(self.kernel_id))

    async def is_alive(self) -> bool:
        return await _alive(self.manager, self.kernel_id)


async def _alive(manager: Any, kernel_id: str) -> bool:
    try:
        km = manager.get_kernel(kernel_id)
    except KeyError:
        return False
    return bool(await ensure_async(km.is_alive()))


class ServerKernels:
    """Gives the notebook's own kernel (the one JupyterLab shows), starting one when there is none."""

    def __init__(self, serverapp: Any, ready_timeout: float = 60.0) -> None:
        self._sessions = serverapp.session_manager
        self._kernels = serverapp.kernel_manager
        self._handles: dict[str, ServerKernel] = {}
        self._lock = asyncio.Lock()
        self.ready_timeout = ready_timeout

    async def kernel_for(self, path: str, kernel_name: str | None) -> ServerKernel:
        async with self._lock:  # two tools must not start two kernels for one notebook
            kernel_id = await self._kernel_id(path, kernel_name)
            handle = self._handles.get(kernel_id)
            alive = await _alive(self._kernels, kernel_id)
            if handle is not None and alive and handle.client.channels_running and not handle.died:
                return handle
            note = None
            if handle is not None:
                handle.client.stop_channels()
                self._handles.pop(kernel_id, None)
                if handle.died:  # the server's restarter may already have brought it back
                    note = RESTARTED
            if not alive:  # it died (e.g. mid-cell): restart it rather than wait for the server's restarter
                log.warning("Kernel %s of %s is dead; restarting it", kernel_id, path)
                await ensure_async(self._kernels.restart_kernel(kernel_id))
                note = RESTARTED
            client = self._kernels.get_kernel(kernel_id).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=self.ready_timeout)
            except RuntimeError as err:
                client.stop_channels()
                raise ToolError(f"the kernel of {path} did not become ready: {err}") from err
            handle = self._handles[kernel_id] = ServerKernel(kernel_id, client, self._kernels, note=note)
            return handle

    async def running(self, path: str) -> ServerKernel | None:
        """The notebook's kernel if a session of the server has one; None (none started) otherwise."""
        if await self._session_kernel(path) is None:
            return None
        return await self.kernel_for(path, None)

    async def restart(self, path: str, kernel_name: str | None) -> ServerKernel:
        """Restart the notebook's kernel, as JupyterLab's Restart Kernel does (started when there is none);
        waits for a cell of it that is running to end, and reconnects the handle in place."""
        handle = await self.kernel_for(path, kernel_name)
        async with handle.lock, self._lock:  # kernel_for never holds a handle's lock: no deadlock
            log.info("Restarting kernel %s of %s", handle.kernel_id, path)
            handle.client.stop_channels()
            await ensure_async(self._kernels.restart_kernel(handle.kernel_id))
            client = self._kernels.get_kernel(handle.kernel_id).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=self.ready_timeout)
            except RuntimeError as err:
                client.stop_channels()
                self._handles.pop(handle.kernel_id, None)
                raise ToolError(
                    f"the kernel of {path} did not become ready after the restart: {err}"
                ) from err
            handle.client, handle.died, handle.note = client, False, None
            return handle

    async def _session_kernel(self, path: str) -> str | None:
        for session in await ensure_async(self._sessions.list_sessions()):
            session_path = str(session.get("path", ""))
            if session_path.split(":", 1)[-1] == path and session.get("kernel"):
                return session["kernel"]["id"]
        return None

    async def _kernel_id(self, path: str, kernel_name: str | None) -> str:
        found = await self._session_kernel(path)
        if found is not None:
            return found
        name = kernel_name if kernel_name in self._kernels.kernel_spec_manager.find_kernel_specs() else None
        log.info("Starting a kernel for %s", path)
        model = await ensure_async(
            self._sessions.create_session(
                path=path,
                name=posixpath.basename(path),
                type="notebook",
                kernel_name=name or self._kernels.default_kernel_name,
            )
        )
        return model["kernel"]["id"]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.client.stop_channels()
        self._handles.clear()
