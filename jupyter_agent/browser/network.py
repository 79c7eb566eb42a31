"""Which network addresses the browser and ``web_fetch`` may reach, decided on resolved addresses.

A URL's host is resolved and every address it resolves to is classified: loopback, private, link-local,
multicast, reserved, unspecified and cloud-metadata addresses are refused in whatever form the URL spells
them (``2130706433``, ``0x7f.1``, ``127.1``, ``[::ffff:127.0.0.1]``, ``localhost.``), IPv4 inside IPv6
included. Entries of ``allowed_networks`` let a named host, an address or a network through; an entry with
a port allows that port only. The Jupyter server's own address is refused unless an entry names it
together with its port.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from jupyter_agent.browser.errors import BrowserError, UrlRefused

IPAddress = IPv4Address | IPv6Address

#: Cloud metadata services (AWS, GCP and Azure share the first; AWS over IPv6; Alibaba Cloud).
METADATA = frozenset(ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
#: What a ``localhost`` name reaches: Chromium answers these itself, without asking DNS.
LOCALHOST = (IPv4Address("127.0.0.1"), IPv6Address("::1"))
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_NAT64 = ip_network("64:ff9b::/96")
_NUMERIC_V4 = re.compile(r"[0-9a-fx.]+")  # what inet_aton may read: 127.1, 0x7f.1, 0177.0.0.1, 2130706433
_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
_KINDS = (
    ("is_loopback", "loopback"),
    ("is_unspecified", "unspecified"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)


class HostUnresolved(BrowserError):
    """A URL's host name does not resolve, so there is no address to check or connect to."""

    code = "host_unresolved"


def normalize_host(host: str) -> str:
    """A URL host as it is compared and resolved: lower case, IDNA-encoded, without brackets or the final dot."""
    host = host.strip().strip("[]").lower().removesuffix(".")
    if not host.isascii():
        try:  # full-width digits and other look-alikes become what the browser would resolve
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


def literal_address(host: str) -> IPAddress | None:
    """The address a host spells with numbers (IPv6, or any IPv4 form ``inet_aton`` reads), else None."""
    host = normalize_host(host)
    try:
        return ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) does not change the class
    except ValueError:
        pass
    if not _NUMERIC_V4.fullmatch(host):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, 6to4, Teredo client, NAT64 or IPv4-compatible."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 0xFFFF):  # ::a.b.c.d, not ::1 or ::
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def unmapped(ip: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` as ``a.b.c.d``: the same host, so it is compared as one."""
    return ip.ipv4_mapped if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None else ip


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"loopback"``, ``"private"``, ``"cloud metadata"``...), or None."""
    if ip in METADATA:
        return "cloud metadata"
    if isinstance(ip, IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            kind = address_kind(inner)
            if kind is not None or ip.ipv4_mapped is not None:
                return kind  # a mapped address is its IPv4 address; the others are refused either way
        if ip.is_site_local:
            return "site-local"
    for attribute, kind in _KINDS:
        if getattr(ip, attribute):
            return kind
    return None if ip.is_global else "non-public"


@dataclass(frozen=True)
class AllowedNetwork:
    """One ``allowed_networks`` entry: a host name, an address or a network, with or without a port."""

    entry: str
    host: str | None = None  # a host name, compared with the URL's host
    network: IPv4Network | IPv6Network | None = None  # an address is a network of one
    port: int | None = None  # None: any port
    is_network: bool = False  # written as a network (10.1.0.0/16): never names the server

    @classmethod
    def parse(cls, entry: str) -> AllowedNetwork:
        """Read ``127.0.0.1:8000``, ``[::1]:8000``, ``intranet.example.org``, ``10.1.0.0/16`` and the like."""
        text = entry.strip() if isinstance(entry, str) else ""
        forms = "a host, host:port, address, [IPv6]:port or network such as 10.1.0.0/16"
        if not text:
            raise ValueError(f"an empty allowed_networks entry; give {forms}")
        if "://" in text or any(c in text for c in " @?#") or text.startswith("/"):
            raise ValueError(f"allowed_networks entry {entry!r} is not {forms}")
        if "/" in text:
            try:
                return cls(text, network=ip_network(text), is_network=True)
            except ValueError as err:
                raise ValueError(f"allowed_networks entry {entry!r} is not a network ({err})") from None
        host, port = text, None
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"allowed_networks entry {entry!r} is not {forms}")
            port = cls._port(entry, rest[1:]) if rest else None
        elif text.count(":") == 1:
            host, _, raw = text.partition(":")
            port = cls._port(entry, raw)
        address = literal_address(host)
        if address is not None:
            return cls(text, network=ip_network(unmapped(address)), port=port)
        name = normalize_host(host)
        if "*" in name:
            raise ValueError(f"allowed_networks entry {entry!r}: wildcards are not supported; name each host")
        if not _NAME.fullmatch(name):
            raise ValueError(f"allowed_networks entry {entry!r} is not {forms}")
        return cls(text, host=name, port=port)

    @staticmethod
    def _port(entry: str, raw: str) -> int:
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ValueError(f"allowed_networks entry {entry!r} has a bad port {raw!r} (1 to 65535)")
        return int(raw)

    def allows(self, host: str, port: int, ip: IPAddress) -> bool:
        """Whether this entry lets a request to ``host:port``, resolved to ``ip``, through."""
        if self.port is not None and port != self.port:
            return False
        if self.host is not None:
            return host == self.host
        return self.network is not None and unmapped(ip) in self.network

    def names(self, host: str, port: int, addresses: Iterable[IPAddress]) -> bool:
        """Whether this entry names ``host:port`` explicitly: a host or an address, with that port."""
        return (
            self.port == port and not self.is_network and all(self.allows(host, port, ip) for ip in addresses)
        )


@dataclass(frozen=True)
class Destination:
    """Where a request goes: the URL's host and port, the addresses it resolved to (all checked), and
    whether that is the Jupyter server itself (allowed by name)."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    to_server: bool = False


class NetworkPolicy:
    """Resolves hosts and decides whether their addresses may be reached. Use it from one event loop."""

    #: Seconds a resolution is reused. Whoever connects uses the addresses that were checked, so reuse
    #: opens no DNS-rebinding window; it only saves the second look-up of a routed request.
    cache_ttl = 5.0

    def __init__(self, allowed: Iterable[str] = (), server_url: str | None = None) -> None:
        self.allowed = tuple(AllowedNetwork.parse(entry) for entry in allowed)
        self.server: tuple[str, int] | None = None
        self.server_addresses: set[IPAddress] = set()
        if server_url:
            parts = urlsplit(server_url)
            host = normalize_host(parts.hostname or "")
            self.server = host, parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
            literal = literal_address(host)
            self.server_addresses.update([unmapped(literal)] if literal else [])
        self._server_resolved = self.server is None
        self._cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}

    # ---- deciding (no traffic) -------------------------------------------------------------------------

    def is_server(self, host: str, port: int, addresses: Iterable[IPAddress]) -> bool:
        """Whether ``host:port`` reaches the Jupyter server: its name, its addresses, or any address of this
        machine (loopback, unspecified, its own interfaces) at its port."""
        if self.server is None or port != self.server[1]:
            return False
        if host == self.server[0]:
            return True
        for ip in map(unmapped, addresses):
            if ip in self.server_addresses or ip.is_loopback or ip.is_unspecified:
                return True
        return False

    def refusal(self, host: str, port: int, addresses: Iterable[IPAddress]) -> str | None:
        """Why a request to ``host:port`` resolved to ``addresses`` is refused, or None when it may go."""
        addresses = tuple(addresses)
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.is_server(host, port, addresses):
            if any(entry.names(host, port, addresses) for entry in self.allowed):
                return None
            return (
                f"{shown} is the Jupyter server's own address, which the browser and web_fetch may not "
                f"reach (rule: server; only an allowed_networks entry naming {shown} permits it)"
            )
        for ip in addresses:
            kind = address_kind(ip)
            if kind is None or any(entry.allows(host, port, ip) for entry in self.allowed):
                continue
            what = (
                f"is a {kind} address,"
                if literal_address(host) == ip
                else f"resolves to {ip}, a {kind} address,"
            )
            return (
                f"{shown} {what} which the browser and web_fetch may not reach "
                f"(rule: network; c.JupyterAgent.allowed_networks = [{shown!r}] would allow it)"
            )
        return None

    # ---- resolving ---------------------------------------------------------------------------------------

    async def resolve(self, host: str) -> tuple[IPAddress, ...]:
        """The addresses ``host`` stands for, as the browser would reach them; :class:`HostUnresolved` if none."""
        host = normalize_host(host)
        literal = literal_address(host)
        if literal is not None:
            return (literal,)
        if host == "localhost" or host.endswith(".localhost"):
            return LOCALHOST
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            raise HostUnresolved(f"could not resolve the host {host!r} ({err})") from err
        addresses = tuple(dict.fromkeys(ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
        if not addresses:
            raise HostUnresolved(f"the host {host!r} has no addresses")
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[host] = now + self.cache_ttl, addresses
        return addresses

    async def destination(self, host: str, port: int) -> Destination:
        """Resolve and check ``host:port``: a :class:`Destination` to connect to, or :class:`UrlRefused`."""
        host = normalize_host(host)
        addresses = await self.resolve(host)
        await self._learn_server_addresses()
        refusal = self.refusal(host, port, addresses)
        if refusal:
            raise UrlRefused(refusal)
        return Destination(host, port, addresses, self.is_server(host, port, addresses))

    async def url_destination(self, url: str) -> Destination:
        """:meth:`destination` of an http(s) or ws(s) URL's host and port."""
        try:
            parts = urlsplit(url.strip())
            host, port = parts.hostname or "", parts.port
        except ValueError as err:
            raise UrlRefused(f"the URL {url!r} is malformed ({err})") from err
        if not host:
            raise UrlRefused(f"the URL {url!r} has no host")
        return await self.destination(host, port or DEFAULT_PORTS.get(parts.scheme.lower(), 80))

    async def _learn_server_addresses(self) -> None:
        """Add the server host's addresses and this machine's own to the server's (once; best effort)."""
        if self._server_resolved or self.server is None:
            return
        self._server_resolved = True
        loop = asyncio.get_running_loop()
        for name in (self.server[0], socket.gethostname()):
            try:
                infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                continue
            self.server_addresses.update(unmapped(ip_address(str(i[4][0]).split("%", 1)[0])) for i in infos)
