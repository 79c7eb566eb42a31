"""A fast, shared Playwright browser for the agent's web tools.

One warm Chromium per server, one isolated context per chat session, a small result cache, a URL policy
and a network policy on the addresses every request resolves to, and page text handed to the model as
untrusted content. Playwright is optional: :class:`BrowserConfig` and
the helpers here import without it; :class:`BrowserService` (in ``service``) needs it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_agent.browser.cache import ResponseCache
from jupyter_agent.browser.policy import BrowserError, UrlPolicy, UrlRefused, wrap_untrusted

if TYPE_CHECKING:
    from jupyter_agent.browser.contexts import BrowserCrashed, BrowserUnavailable
    from jupyter_agent.browser.service import BrowserService

__all__ = [
    "BrowserConfig",
    "BrowserCrashed",
    "BrowserError",
    "BrowserService",
    "BrowserUnavailable",
    "ResponseCache",
    "UrlPolicy",
    "UrlRefused",
    "find_chromium",
    "wrap_untrusted",
]

# No --no-sandbox: the sandbox is used whenever the platform allows (see browser.sandbox). WebRTC may not
# send UDP around the proxy, which checks every address the browser reaches.
DEFAULT_LAUNCH_ARGS = (
    "--disable-gpu --disable-background-networking --disable-component-update --disable-sync "
    "--no-first-run --disable-quic --disable-dev-shm-usage "
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp"
).split()


def find_chromium() -> str | None:
    """The system Chromium, or None to use Playwright's own build."""
    for name in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(name, os.X_OK):
            return name
    return shutil.which("chromium")


@dataclass
class BrowserConfig:
    """How the browser runs. Times are in seconds."""

    executable_path: str | None = field(default_factory=find_chromium)  # None: Playwright's own Chromium
    endpoint: str | None = None  # connect instead of launching: ws://... (Playwright) or http(s)://... (CDP)
    launch_args: list[str] = field(default_factory=lambda: list(DEFAULT_LAUNCH_ARGS))
    pool_size: int = 2  # ready contexts kept warm for new sessions
    max_pages_per_session: int = 5  # tabs a session may have open; the oldest close first
    idle_timeout: float = 600.0  # a session's context is closed after this long unused
    memory_limit_mb: int | None = (
        None  # restart the browser when its processes' RSS exceeds this; None: never
    )
    allow: list[str] = field(default_factory=list)  # URL patterns; empty: any http(s) URL
    deny: list[str] = field(default_factory=list)  # URL patterns, checked before allow
    allow_file_urls: bool = False
    server_url: str | None = None  # the Jupyter server's base URL; its /api/ is refused unless allowed
    # Hosts, addresses or networks (127.0.0.1:8000, intranet.example.org, 10.1.0.0/16) that may be reached
    # though not public; the server's own address only when named with its port.
    allowed_networks: list[str] = field(default_factory=list)
    cache_ttl: float = 60.0
    cache_max_bytes: int = 32 * 2**20
    downloads: bool = False
    nav_timeout: float = 20.0
    action_timeout: float = 10.0  # click, type, snapshot
    load_grace: float = 3.0  # once the DOM is ready, wait at most this long for the load event
    max_text_chars: int = 20_000  # page text handed to the model per call
    excerpt_chars: int = 1_500  # text excerpt returned by navigate
    viewport: tuple[int, int] = (1280, 800)

    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(
            tuple(self.allow),
            tuple(self.deny),
            self.allow_file_urls,
            self.server_url,
            tuple(self.allowed_networks),
        )


class BrowserOnFirstUse:
    """A process's browser, started by the first tool that needs it: Playwright is not even imported before.

    For the kernel and the CLI, where most turns never open a page. ``policy`` (what ``web_fetch`` checks)
    needs no browser; anything else builds the :class:`~jupyter_agent.browser.service.BrowserService`.
    """

    def __init__(self, config: BrowserConfig) -> None:
        self.config = config
        self.policy = config.url_policy()
        self._service: Any = None

    def __getattr__(self, name: str) -> Any:  # only for what this class does not define itself
        if self._service is None:
            from jupyter_agent.browser.service import BrowserService

            self._service = BrowserService(self.config)
        return getattr(self._service, name)

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()


def __getattr__(name: str) -> Any:
    if name in ("BrowserCrashed", "BrowserUnavailable"):
        from jupyter_agent.browser import contexts

        return getattr(contexts, name)
    if name == "BrowserService":
        from jupyter_agent.browser import service

        return service.BrowserService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
