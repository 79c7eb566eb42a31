"""The HTTP proxy on 127.0.0.1 through which a launched Chromium reaches the network, at checked addresses.

Playwright's ``route`` sees the requests a page makes, but not the hops of a redirect, and Chromium resolves
host names itself: a name checked as public could resolve to a private address a moment later (DNS
rebinding). Through this proxy the browser resolves nothing. Every connection it opens (each redirect hop,
sub-resource, frame and WebSocket) names its host here; the host is resolved and checked once, and the proxy
connects to the address it checked. HTTPS and WebSockets pass through CONNECT tunnels (the proxy sees only
host and port; TLS stays end to end); plain HTTP is forwarded one request per connection, so each request's
host is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from urllib.parse import urlsplit

from jupyter_agent.browser.errors import BrowserError, UrlRefused
from jupyter_agent.browser.network import Destination, unmapped
from jupyter_agent.browser.policy import UrlPolicy

log = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024  # largest request or response head accepted
_HOP_BY_HOP = re.compile(rb"(?im)^(proxy-connection|connection|keep-alive|proxy-authorization):[^\r\n]*\r\n")
_AUTHORITY = re.compile(r"\[?(?P<host>[^\]]+?)\]?:(?P<port>\d{1,5})")


class PinningProxy:
    """Checks the host of every connection the browser makes, and connects to the checked address."""

    def __init__(self, policy: UrlPolicy, *, connect_timeout: float = 10.0) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.refused = 0  # connections refused since start, for diagnostics
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; returns the proxy's URL."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=HEAD_LIMIT)
        return self.url

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in [*self._connections]:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    # ---- one client connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            method, target, rest = _request_line(head)
            if method == "CONNECT":
                destination = await self._check_authority(target)
                up_reader, upstream = await self._connect(destination)
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await _relay(reader, writer, up_reader, upstream)
            else:
                destination = await self._check_url(target)
                up_reader, upstream = await self._connect(destination)
                parts = urlsplit(target)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                upstream.write(f"{method} {path} ".encode("latin-1") + _close(rest))
                await _relay(reader, writer, up_reader, upstream, response_head=True)
        except UrlRefused as err:
            self.refused += 1
            log.info("the browser's request was refused: %s", err.message)
            _reply(writer, 403, "Refused by jupyter-agent's network policy.")
        except BrowserError as err:  # an unresolvable host
            _reply(writer, 502, err.message)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            _reply(writer, 400, "bad proxy request")
        except OSError as err:
            _reply(writer, 502, f"could not connect: {err}")
        finally:
            if task is not None:
                self._connections.discard(task)
            for stream in (upstream, writer):
                if stream is not None:
                    stream.close()

    async def _check_authority(self, authority: str) -> Destination:
        match = _AUTHORITY.fullmatch(authority)
        if match is None:
            raise ValueError(f"bad CONNECT target {authority!r}")
        return await self.policy.network.destination(match["host"], int(match["port"]))

    async def _check_url(self, url: str) -> Destination:
        if not url.lower().startswith("http://"):
            raise ValueError(f"a proxy request for {url!r} is not an absolute http:// URL")
        return await self.policy.request_destination(url)

    async def _connect(self, destination: Destination) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first of the checked addresses that answers (never to a fresh look-up)."""
        error: OSError = OSError(f"no address for {destination.host}")
        for address in destination.addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(unmapped(address)), destination.port, limit=HEAD_LIMIT),
                    self.connect_timeout,
                )
            except TimeoutError:
                error = OSError(f"connecting to {address} port {destination.port} timed out")
            except OSError as err:
                error = err
        raise error


def _request_line(head: bytes) -> tuple[str, str, bytes]:
    """The method, the target and the rest of the head (from the HTTP version on)."""
    line, _, _ = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    method, target = parts[0].decode("ascii"), parts[1].decode("latin-1")
    return method, target, head[len(parts[0]) + len(parts[1]) + 2 :]


def _close(head: bytes) -> bytes:
    """A head (from its first line's end on) without hop-by-hop headers, saying ``Connection: close``."""
    first, _, headers = head.partition(b"\r\n")
    return first + b"\r\n" + _HOP_BY_HOP.sub(b"", headers)[:-2] + b"Connection: close\r\n\r\n"


async def _relay(
    client_reader: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    *,
    response_head: bool = False,
) -> None:
    """Copy both ways until either side is done; with ``response_head``, mark the response's connection as
    closing, so the browser opens a new one (checked again) for its next plain-HTTP request."""

    async def down() -> None:
        if response_head:
            head = await reader.readuntil(b"\r\n\r\n")
            client.write(_close(head))
        await _copy(reader, client)

    tasks = [asyncio.ensure_future(_copy(client_reader, upstream)), asyncio.ensure_future(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def _reply(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (text + "\n").encode()
    with contextlib.suppress(OSError, RuntimeError):
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
