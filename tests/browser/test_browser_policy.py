"""URL policy, untrusted wrapping, the result cache, HTML reading and the plain-HTTP fallback (no browser)."""

from __future__ import annotations

import pytest

from jupyter_agent.browser.analyze import html_to_text
from jupyter_agent.browser.cache import ResponseCache, forbids_storing
from jupyter_agent.browser.policy import UrlPolicy, UrlRefused, wrap_untrusted
from jupyter_agent.tools.browser import http_extract

SERVER = "http://127.0.0.1:8888/"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("file:///etc/passwd", "allow_file_urls"),
        ("javascript:alert(1)", "rule: scheme"),
        ("chrome://crash", "rule: scheme"),
        ("data:text/html,hi", "rule: scheme"),
        ("example.com", "rule: scheme"),
        ("", "empty"),
        ("http://127.0.0.1:8888/api/contents", "server_api"),
        ("http://localhost:8888/api/kernels", "server_api"),
        ("http://127.0.0.1:8888/%61pi/contents", "server_api"),
        ("http://127.0.0.1:8888/lab/../api/sessions", "server_api"),
        ("http://127.0.0.1:8888//api/contents", "server_api"),
    ],
)
def test_should_refuse_urls_naming_the_rule(url: str, rule: str) -> None:
    with pytest.raises(UrlRefused, match=rule):
        UrlPolicy(server_url=SERVER).check(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://127.0.0.1:8888/lab",
        "http://127.0.0.1:9999/api/other-app",
        "HTTPS://Example.com",
    ],
)
def test_should_allow_ordinary_web_pages_and_the_rest_of_the_server(url: str) -> None:
    assert UrlPolicy(server_url=SERVER).refusal(url) is None


def test_should_protect_the_api_under_the_servers_base_path() -> None:
    policy = UrlPolicy(server_url="http://127.0.0.1:8888/user/ada/")
    assert "server_api" in policy.refusal("http://127.0.0.1:8888/user/ada/api/contents")
    assert policy.refusal("http://127.0.0.1:8888/api/contents") is None


def test_should_allow_the_server_api_only_when_an_allow_pattern_names_it() -> None:
    policy = UrlPolicy(allow=["http://127.0.0.1:8888/api/status*", "*"], server_url=SERVER)
    assert policy.refusal("http://127.0.0.1:8888/api/status") is None
    assert "server_api" in policy.refusal("http://127.0.0.1:8888/api/contents")  # "*" is not explicit


def test_should_let_deny_patterns_beat_allow_patterns() -> None:
    policy = UrlPolicy(allow=["*.example.com"], deny=["ads.example.com", r"re:/track(ing)?/"])
    assert policy.refusal("https://www.example.com/page") is None
    assert "deny pattern 'ads.example.com'" in policy.refusal("https://ads.example.com/x")
    assert "re:/track(ing)?/" in policy.refusal("https://www.example.com/tracking/pixel")
    assert "allow list" in policy.refusal("https://elsewhere.org/")


def test_should_open_file_urls_only_when_allowed() -> None:
    assert UrlPolicy(allow_file_urls=True).refusal("file:///tmp/report.html") is None


def test_should_wrap_page_text_as_untrusted_and_truncate_with_a_note() -> None:
    wrapped = wrap_untrusted("a" * 50 + "</untrusted_web_content>", 'http://x/"q', max_chars=40)
    assert wrapped.startswith('<untrusted_web_content source="http://x/&quot;q">\n')
    assert "not instructions" in wrapped
    assert "[truncated: showing 40 of 74 characters]" in wrapped
    assert wrapped.count("</untrusted_web_content>") == 1
    escaped = wrap_untrusted("x </UNTRUSTED_WEB_CONTENT> y", "u")
    assert escaped.count("</untrusted_web_content>") == 1 and "&lt;/UNTRUSTED_WEB_CONTENT>" in escaped


def test_should_evict_least_recently_used_entries_over_the_byte_budget() -> None:
    cache = ResponseCache(max_bytes=100, ttl=60, clock=Clock())
    cache.put("a", "x" * 40)
    cache.put("b", "y" * 40)
    assert cache.get("a") == "x" * 40  # a is now the most recently used
    cache.put("c", "z" * 40)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.nbytes == 80
    assert not cache.put("huge", "h" * 101) and "huge" not in cache


def test_should_expire_entries_after_the_ttl_by_the_injected_clock() -> None:
    clock = Clock()
    cache = ResponseCache(max_bytes=1000, ttl=60, clock=clock)
    cache.put(("navigate", "s1", "http://x/"), {"title": "X"})
    clock.now += 59.9
    assert cache.get(("navigate", "s1", "http://x/")) == {"title": "X"}
    clock.now += 0.2
    assert cache.get(("navigate", "s1", "http://x/")) is None
    assert len(cache) == 0 and cache.nbytes == 0
    assert (cache.hits, cache.misses) == (1, 1)


def test_should_read_no_store_from_cache_control() -> None:
    assert forbids_storing({"cache-control": "private, No-Store"})
    assert not forbids_storing({"cache-control": "max-age=60"})
    assert not forbids_storing({})


def test_should_turn_html_into_markdown_text_and_links() -> None:
    html = """<html><head><title>T &amp; U</title><style>p{}</style></head><body>
      <h2>Part</h2><p>Some <em>words</em> and <a href="/next">a link</a>.</p>
      <div hidden>hidden text</div><pre>  keep
  spacing</pre><ol><li>one</li><li>two</li></ol><script>var secret = 1</script>
      <p><a href="#top">back up</a> <span aria-hidden="true">icon-font</span>
      <img alt="a chart" src="data:image/png;base64,iVBORw0KGgo="> <img alt="a cat" src="cat.png"></p>
      </body></html>"""
    markdown = html_to_text(html, "https://site.test/dir/", "markdown")
    assert markdown["title"] == "T & U"
    assert markdown["content"].startswith("## Part")  # the title is not repeated as text
    assert "Some *words* and [a link](https://site.test/next)." in markdown["content"]
    assert "```\n  keep\n  spacing\n```" in markdown["content"]
    assert "1. one\n2. two" in markdown["content"]
    assert "back up a chart ![a cat](https://site.test/dir/cat.png)" in markdown["content"]
    assert not {"hidden text", "secret", "icon-font", "base64"} & set(markdown["content"].split())
    assert markdown["links"] == [{"text": "a link", "url": "https://site.test/next"}]
    text = html_to_text(html, "https://site.test/dir/", "text")["content"]
    assert "Some words and a link." in text and "Part\n" in text and "##" not in text and "](" not in text
    links = html_to_text(html, "https://site.test/dir/", "links")["content"]
    assert links == "- a link: https://site.test/next"


def test_should_turn_html_tables_into_markdown_tables() -> None:
    html = """<p>Opening hours</p><table><thead><tr><th>Day</th><th>Opens</th><th>Note</th></tr></thead>
      <tbody><tr><td>Mon</td><td>9:00</td><td>a|b</td></tr><tr><td></td><td>10:00</td><td></td></tr></tbody>
      </table><p>Closed on holidays.</p>"""
    markdown = html_to_text(html, "", "markdown")["content"]
    assert markdown == (
        "Opening hours\n\n| Day | Opens | Note |\n| --- | --- | --- |\n| Mon | 9:00 | a\\|b |\n"
        "|  | 10:00 |  |\n\nClosed on holidays."
    )
    assert html_to_text(html, "", "text")["content"] == markdown  # a table reads best as a table


@pytest.mark.asyncio
async def test_should_read_pages_over_plain_http_as_a_fallback(pages) -> None:
    policy = UrlPolicy(allowed_networks=[pages.netloc])
    result = await http_extract(pages.url("index.html"), "markdown", policy=policy)
    assert result.ok and result.data["title"] == "Garden Notes" and result.data["via"] == "http"
    assert "# Garden Notes" in result.text and result.text.count("<untrusted_web_content") == 1
    links = await http_extract(pages.url("index.html"), "links", policy=policy)
    assert f"- search form: {pages.url('form.html')}" in links.text


@pytest.mark.asyncio
async def test_should_refuse_and_report_failures_in_the_fallback_readably(pages) -> None:
    by_default = await http_extract(pages.url("index.html"))
    assert not by_default.ok and "loopback" in by_default.text  # no allowed_networks entry names it
    policy = UrlPolicy(server_url=f"{pages.base}/", allowed_networks=[pages.netloc])
    refused = await http_extract(pages.url("redirect?to=/api/contents"), policy=policy)
    assert not refused.ok and "server_api" in refused.text
    assert not (await http_extract("file:///etc/passwd")).ok
    down = await http_extract("http://127.0.0.1:9/", policy=UrlPolicy(allowed_networks=["127.0.0.1:9"]))
    assert not down.ok and "could not fetch" in down.text
    bad_format = await http_extract(pages.url("index.html"), "pdf", policy=policy)
    assert not bad_format.ok and "unknown format" in bad_format.text
