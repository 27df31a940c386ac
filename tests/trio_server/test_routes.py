"""Tests for trio_server.routes: wildcard matching, next-hop choice, config parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_server.routes import (
    ForwardRoute,
    HostPort,
    QueueSettings,
    RelaySettings,
    RouteConfigError,
    RouteTable,
    match_address,
    parse_forward_tables,
    parse_host_port,
    parse_queue_table,
    parse_relay_table,
)

BRANCH = HostPort(host="127.0.0.1", port=2526)
SMARTHOST = HostPort(host="127.0.0.1", port=2527)


@pytest.mark.parametrize(
    ("pattern", "address", "matches"),
    [
        ("*@branch.example.test", "bob@branch.example.test", True),
        ("*@branch.example.test", "bob@BRANCH.Example.TEST", True),
        ("*@branch.example.test", "bob@sub.branch.example.test", False),
        ("*@*.example.test", "bob@sub.example.test", True),
        ("sales-?@example.test", "sales-1@example.test", True),
        ("sales-?@example.test", "sales-12@example.test", False),
        ("sales-?@example.test", "Sales-1@example.test", False),
        ("*@example.test", "@example.test", True),
        ("a.b@example.test", "axb@example.test", False),
        ("[ab]@example.test", "a@example.test", False),
        ("[ab]@example.test", "[ab]@example.test", True),
        ("*@example.test", "x@example.test.evil", False),
    ],
)
def test_wildcards(pattern: str, address: str, matches: bool) -> None:
    """* and ? are the only wildcards; domains ignore case, local parts do not."""
    assert match_address(pattern, address) is matches


@settings(max_examples=200)
@given(
    local=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="@"),
        min_size=1,
        max_size=20,
    ),
    domain=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
)
def test_star_matches_every_local_part(local: str, domain: str) -> None:
    """*@domain matches any local part at that domain, in any letter case of the domain."""
    assert match_address(f"*@{domain}", f"{local}@{domain.upper()}")
    assert match_address(f"{local}@{domain}", f"{local}@{domain}")


def test_first_forward_route_wins() -> None:
    """Routes are tried in file order; the first match decides."""
    first = ForwardRoute(addresses="vip@branch.example.test", server=SMARTHOST)
    second = ForwardRoute(addresses="*@branch.example.test", server=BRANCH)
    table = RouteTable(forwards=(first, second))
    assert table.forward_for("vip@branch.example.test") is first
    assert table.forward_for("bob@branch.example.test") is second
    assert table.forward_for("bob@elsewhere.test") is None


def test_next_hop_never_open_relay() -> None:
    """Forward routes take anyone's mail; the smarthost only local or authenticated senders."""
    table = RouteTable(
        forwards=(ForwardRoute(addresses="*@branch.example.test", server=BRANCH),),
        relay=RelaySettings(smarthost=SMARTHOST),
    )
    assert table.next_hop("bob@branch.example.test", may_relay=False) == BRANCH
    assert table.next_hop("x@gmail.test", may_relay=True) == SMARTHOST
    assert table.next_hop("x@gmail.test", may_relay=False) is None
    assert RouteTable().next_hop("x@gmail.test", may_relay=True) is None


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:25", "127.0.0.1", 25),
        ("[::1]:2525", "::1", 2525),
        ("mx.example.test:587", "mx.example.test", 587),
    ],
)
def test_host_port(text: str, host: str, port: int) -> None:
    """host:port and [v6]:port parse, and print back the same way."""
    parsed = parse_host_port(text, key="k")
    assert (parsed.host, parsed.port) == (host, port)
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "::1:25",
        "[::1]25",
        "[nothost]:25",
        "a:0",
        "a:65536",
        "a:x",
        "a b:25",
        ":25",
        25,
    ],
)
def test_bad_host_port(text: object) -> None:
    """Anything but host:port is refused with the key named."""
    with pytest.raises(RouteConfigError, match=r"^relay\.smarthost: expected"):
        parse_host_port(text, key="relay.smarthost")


def test_parse_forward_full() -> None:
    """A complete [[forward]] table with Minger verification parses to a ForwardRoute."""
    routes = parse_forward_tables(
        [
            {
                "addresses": "*@branch.example.test",
                "server": "127.0.0.1:2526",
                "verify": "minger",
                "minger_server": "127.0.0.1:4070",
                "minger_secret": "s3cret-s3cret-s3cret",
                "minger_cache_seconds": 60,
                "minger_timeout": 0.5,
            },
            {"addresses": "*@other.test", "server": "127.0.0.1:2528"},
        ]
    )
    assert routes[0].verify == "minger"
    assert routes[0].minger_server == HostPort(host="127.0.0.1", port=4070)
    assert routes[0].minger_secret == "s3cret-s3cret-s3cret"
    assert routes[0].minger_cache_seconds == 60
    assert routes[0].minger_timeout == 0.5
    assert routes[1].minger_timeout == 5.0
    assert routes[1].verify == "none"
    assert routes[1].minger_server is None


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ({"addresses": "*@x"}, "forward"),
        ([{"server": "h:1"}], "forward[0].addresses"),
        ([{"addresses": "nodomain", "server": "h:1"}], "forward[0].addresses"),
        ([{"addresses": "*@x"}], "forward[0].server"),
        ([{"addresses": "*@x", "server": "h"}], "forward[0].server"),
        ([{"addresses": "*@x", "server": "h:1", "verify": "yes"}], "forward[0].verify"),
        ([{"addresses": "*@x", "server": "h:1", "verify": "minger"}], "forward[0].minger_server"),
        (
            [
                {
                    "addresses": "*@x",
                    "server": "h:1",
                    "verify": "minger",
                    "minger_server": "h:2",
                    "minger_secret": 12345,
                }
            ],
            "forward[0].minger_secret",
        ),
        (
            [
                {
                    "addresses": "*@x",
                    "server": "h:1",
                    "verify": "minger",
                    "minger_server": "h:2",
                    "minger_secret": "has space",
                }
            ],
            "forward[0].minger_secret",
        ),
        (
            [{"addresses": "*@x", "server": "h:1", "minger_cache_seconds": True}],
            "forward[0].minger_cache_seconds",
        ),
        ([{"addresses": "*@x", "server": "h:1", "sever": "h:1"}], "forward[0].sever"),
        ([{"addresses": "*@x", "server": "h:1", "minger_timeout": 0}], "forward[0].minger_timeout"),
        (
            [{"addresses": "*@x", "server": "h:1", "minger_timeout": "5s"}],
            "forward[0].minger_timeout",
        ),
        ([{"addresses": "*@x", "server": "h:1"}, "x"], "forward[1]"),
    ],
)
def test_forward_errors_name_the_key(tables: object, key: str) -> None:
    """Every mistake in [[forward]] names the exact key that is wrong."""
    with pytest.raises(RouteConfigError) as caught:
        parse_forward_tables(tables)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: expected ")


def test_minger_secret_optional() -> None:
    """Without minger_secret the route asks anonymously (the secret stays None)."""
    route = {"addresses": "*@x", "server": "h:1", "verify": "minger", "minger_server": "h:2"}
    assert parse_forward_tables([route])[0].minger_secret is None


def test_parse_relay() -> None:
    """[relay] gives the smarthost; an empty table means no relaying."""
    assert parse_relay_table({"smarthost": "127.0.0.1:2527"}).smarthost == SMARTHOST
    assert parse_relay_table({}).smarthost is None
    with pytest.raises(RouteConfigError, match=r"^relay\.smarthst"):
        parse_relay_table({"smarthst": "h:1"})


def test_parse_queue_and_retry_delay() -> None:
    """[queue] parses; the retry schedule's last delay repeats."""
    queue = parse_queue_table(
        {"retry_schedule": [60, 300], "max_age": 1000, "delay_notice_after": 500}
    )
    assert queue == QueueSettings(retry_schedule=(60, 300), max_age=1000, delay_notice_after=500)
    assert [queue.retry_delay(n) for n in (1, 2, 3, 10)] == [60, 300, 300, 300]
    assert parse_queue_table({}) == QueueSettings()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"retry_schedule": []}, "queue.retry_schedule"),
        ({"retry_schedule": "60"}, "queue.retry_schedule"),
        ({"retry_schedule": [60, -1]}, "queue.retry_schedule[1]"),
        ({"max_age": "5d"}, "queue.max_age"),
        ({"delay_notice_after": 0}, "queue.delay_notice_after"),
        ({"max_size": 1}, "queue.max_size"),
    ],
)
def test_queue_errors_name_the_key(table: dict[str, object], key: str) -> None:
    """Every mistake in [queue] names the exact key that is wrong."""
    with pytest.raises(RouteConfigError) as caught:
        parse_queue_table(table)
    assert caught.value.key == key
