"""The network policy as pure functions: how every spelling of an address is classified, how
``allowed_networks`` entries match, the server's own address, and the sandbox decision. No traffic."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from jupyter_agent.browser.network import (
    LOCALHOST,
    AllowedNetwork,
    NetworkPolicy,
    address_kind,
    literal_address,
    unmapped,
)
from jupyter_agent.browser.policy import UrlPolicy, UrlRefused
from jupyter_agent.browser.sandbox import sandbox_failure, sandbox_plan
from jupyter_agent.settings import JupyterAgent
from jupyter_agent.tools.browser import http_extract

LOOP = ip_address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1", "loopback"),
        ("2130706433", "loopback"),
        ("0x7f.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("127.0.0.1.", "loopback"),
        ("１２７.０.０.１", "loopback"),  # full-width digits, as a browser reads them
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("[0:0:0:0:0:ffff:127.0.0.1]", "loopback"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("169.254.169.254", "cloud metadata"),
        ("0xa9fea9fe", "cloud metadata"),
        ("[::ffff:169.254.169.254]", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "non-public"),  # shared address space (carrier-grade NAT)
    ],
)
def test_should_classify_every_spelling_of_a_refused_address(host: str, kind: str) -> None:
    address = literal_address(host)
    assert address is not None, host
    assert address_kind(address) == kind


@pytest.mark.parametrize(
    "host", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_should_let_public_addresses_through(host: str) -> None:
    address = literal_address(host)
    assert address is not None and address_kind(address) is None
    assert NetworkPolicy().refusal(host, 443, [address]) is None


@pytest.mark.parametrize(
    "host", ["example.org", "localhost", "localhost.", "foo.localhost", "127.0.0.1 x", "1.2.3.4.5"]
)
def test_should_leave_names_to_resolution(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.asyncio
async def test_should_resolve_numeric_and_localhost_spellings_without_asking_dns() -> None:
    policy = NetworkPolicy()
    for host in ("2130706433", "0x7f.1", "127.1", "127.0.0.1.", "[::ffff:127.0.0.1]"):
        assert [unmapped(a) for a in await policy.resolve(host)] == [LOOP], host
    for host in ("localhost", "localhost.", "LOCALHOST", "app.localhost"):
        assert await policy.resolve(host) == LOCALHOST


def test_should_refuse_a_name_that_resolves_to_a_refused_address_naming_it() -> None:
    policy = NetworkPolicy()
    refusal = policy.refusal("intranet.example.org", 80, [ip_address("10.0.0.5")])
    assert "intranet.example.org:80 resolves to 10.0.0.5, a private address" in refusal
    assert "allowed_networks = ['intranet.example.org:80']" in refusal
    mixed = policy.refusal("rebind.example.org", 443, [ip_address("93.184.216.34"), ip_address("127.0.0.1")])
    assert "resolves to 127.0.0.1, a loopback address" in mixed
    literal = policy.refusal("169.254.169.254", 80, [ip_address("169.254.169.254")])
    assert literal.startswith("169.254.169.254:80 is a cloud metadata address")


@pytest.mark.parametrize(
    ("entry", "host", "port", "address", "allowed"),
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000, LOOP, True),
        ("127.0.0.1:8000", "2130706433", 8000, LOOP, True),  # the same address, spelled otherwise
        ("127.0.0.1:8000", "::ffff:127.0.0.1", 8000, ip_address("::ffff:127.0.0.1"), True),
        ("127.0.0.1:8000", "127.0.0.1", 8001, LOOP, False),  # another port
        ("127.0.0.1:8000", "::1", 8000, ip_address("::1"), False),  # another address
        ("127.0.0.1", "127.0.0.1", 5000, LOOP, True),  # no port: any port
        ("[::1]:9000", "::1", 9000, ip_address("::1"), True),
        ("::1", "::1", 9001, ip_address("::1"), True),
        ("intranet.example.org", "intranet.example.org", 443, ip_address("10.0.0.5"), True),
        ("Intranet.Example.org.", "intranet.example.org", 80, ip_address("10.0.0.5"), True),
        ("intranet.example.org", "other.example.org", 443, ip_address("10.0.0.5"), False),
        ("intranet.example.org:8080", "intranet.example.org", 8080, ip_address("10.0.0.5"), True),
        ("intranet.example.org:8080", "intranet.example.org", 443, ip_address("10.0.0.5"), False),
        ("10.1.0.0/16", "10.1.2.3", 80, ip_address("10.1.2.3"), True),
        ("10.1.0.0/16", "files.corp", 443, ip_address("10.1.200.1"), True),
        ("10.1.0.0/16", "10.2.0.1", 80, ip_address("10.2.0.1"), False),
        ("fd00::/8", "fd12::1", 80, ip_address("fd12::1"), True),
    ],
)
def test_should_allow_exactly_what_an_allowed_networks_entry_names(
    entry: str, host: str, port: int, address, allowed: bool
) -> None:
    refusal = NetworkPolicy([entry]).refusal(host, port, [address])
    assert (refusal is None) is allowed, refusal


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "empty"),
        ("http://intranet.example.org", "is not a host"),
        ("10.1.2.3/16", "has host bits set"),
        ("10.0.0.0/33", "is not a network"),
        ("10.0.0.0/8:80", "is not a network"),
        ("*.example.org", "wildcards are not supported"),
        ("intranet:0", "bad port"),
        ("intranet:70000", "bad port"),
        ("[::1", "is not a host"),
        ("two words", "is not a host"),
    ],
)
def test_should_reject_malformed_entries_with_a_clear_message(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AllowedNetwork.parse(entry)
    with pytest.raises(ValueError, match=message):  # what the server says at start
        JupyterAgent(allowed_networks=[entry])


def test_should_accept_every_documented_entry_form_in_the_setting() -> None:
    entries = ["127.0.0.1:8000", "intranet.example.org", "10.1.0.0/16", "[::1]:8000", "fd00::/8"]
    assert JupyterAgent(allowed_networks=entries).allowed_networks == entries


SERVER = "http://localhost:8888/"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", LOOP),
        ("2130706433", LOOP),
        ("::ffff:127.0.0.1", ip_address("::ffff:127.0.0.1")),
        ("localhost", LOOP),
        ("::1", ip_address("::1")),
        ("0.0.0.0", ip_address("0.0.0.0")),
        ("127.0.0.2", ip_address("127.0.0.2")),
    ],
)
def test_should_refuse_the_servers_own_address_in_any_form_even_when_loopback_is_allowed(
    host: str, address
) -> None:
    policy = NetworkPolicy(["127.0.0.0/8", "::1", "0.0.0.0", "127.0.0.1"], SERVER)
    refusal = policy.refusal(host, 8888, [address])
    assert refusal is not None and "the Jupyter server's own address" in refusal
    assert policy.refusal(host, 9999, [address]) is None  # the rest of the machine is allowed


def test_should_let_the_server_through_only_when_an_entry_names_it_with_its_port() -> None:
    policy = NetworkPolicy(["127.0.0.1:8888"], SERVER)
    assert policy.refusal("127.0.0.1", 8888, [LOOP]) is None
    assert policy.refusal("2130706433", 8888, [LOOP]) is None  # named by its address
    assert "own address" in policy.refusal("localhost", 8888, LOCALHOST)  # ::1 is not named
    assert NetworkPolicy(["localhost:8888"], SERVER).refusal("localhost", 8888, LOCALHOST) is None


@pytest.mark.asyncio
async def test_should_still_refuse_the_servers_api_when_its_address_is_allowed() -> None:
    policy = UrlPolicy(server_url="http://127.0.0.1:8888/", allowed_networks=["127.0.0.1:8888"])
    assert (await policy.admit("http://127.0.0.1:8888/lab")).to_server
    for url in ("http://127.0.0.1:8888/api/contents", "http://2130706433:8888/%61pi/kernels"):
        with pytest.raises(UrlRefused, match="server_api"):
            await policy.admit(url)
        assert "server_api" in await policy.request_refusal(url)


@pytest.mark.asyncio
async def test_should_refuse_loopback_by_default_and_pass_urls_that_never_reach_the_network() -> None:
    policy = UrlPolicy()
    with pytest.raises(UrlRefused, match="loopback"):
        await policy.admit("http://localhost.:8000/")
    assert await policy.request_refusal("data:text/plain,hi") is None
    assert await policy.request_refusal("blob:https://example.org/1234") is None
    assert "loopback" in await policy.request_refusal("ws://[::1]:8000/socket")


def test_should_plan_the_sandbox_from_the_user_and_the_launch_arguments() -> None:
    as_root = sandbox_plan([], euid=0)
    assert as_root[0] is False and "running as root" in as_root[1]
    assert sandbox_plan(["--no-sandbox"], euid=1000) == (
        False,
        "--no-sandbox is among the browser's launch arguments",
    )
    sandboxed, reason = sandbox_plan([], euid=1000)
    assert sandboxed or "user namespaces are disabled" in reason  # depends on this machine's kernel


def test_should_read_chromiums_reason_from_a_failed_sandboxed_launch() -> None:
    message = (
        "BrowserType.launch: Target page, context or browser has been closed\nBrowser logs:\n"
        "Chromium sandboxing failed!\n  - (alternative): Launch Chromium without sandbox using "
        "'chromiumSandbox: false' option\nCall log:\n  - [pid=1][err] [1:1:1202/1.2:ERROR:zygote_host_impl_linux"
        ".cc:103] Running as root without --no-sandbox is not supported. See https://crbug.com/638180.\n"
    )
    assert sandbox_failure(message) == (
        "Running as root without --no-sandbox is not supported. See https://crbug.com/638180."
    )
    assert sandbox_failure("BrowserType.launch: Executable doesn't exist at /x") is None


@pytest.mark.asyncio
async def test_should_leave_file_urls_to_their_own_rule_and_keep_them_from_web_fetch() -> None:
    policy = UrlPolicy(allow_file_urls=True)
    assert await policy.admit("file:///tmp/report.html") is None  # no address to check
    fetched = await http_extract("file:///etc/hostname", policy=policy)
    assert not fetched.ok and "http:// and https:// URLs only" in fetched.text
