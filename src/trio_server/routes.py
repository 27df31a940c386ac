"""Where mail for a non-local recipient goes: forward routes and the smarthost.

The config tables this module reads (the config loader calls the ``parse_*``
functions on the decoded TOML values and wraps :class:`RouteConfigError` with the
file name):

```toml
[[forward]]                            # several allowed; the first match wins
addresses = "*@branch.example.test"    # wildcards: * any run of characters, ? exactly one
server = "127.0.0.1:2526"
verify = "minger"                      # or "none"
minger_server = "127.0.0.1:4069"
minger_secret = "..."
minger_cache_seconds = 3600
minger_timeout = 5                     # seconds, then 451 4.4.3

[relay]
smarthost = "127.0.0.1:2527"           # other domains, for local or authenticated senders

[queue]
retry_schedule = [60, 300, 900, 3600]  # seconds between attempts; the last repeats
max_age = 432000                       # then the message fails (DSN)
delay_notice_after = 14400             # "delayed" DSN when NOTIFY has DELAY
```

Domains compare case-insensitively (RFC 5321 §2.4); local parts exactly, since only
the destination may interpret them (RFC 5321 §2.4 again).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_DELAY_NOTICE_AFTER",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MINGER_CACHE_SECONDS",
    "DEFAULT_MINGER_TIMEOUT",
    "DEFAULT_RETRY_SCHEDULE",
    "ForwardRoute",
    "HostPort",
    "QueueSettings",
    "RelaySettings",
    "RouteConfigError",
    "RouteTable",
    "match_address",
    "parse_forward_tables",
    "parse_host_port",
    "parse_queue_table",
    "parse_relay_table",
]

DEFAULT_RETRY_SCHEDULE = (60, 300, 900, 3600)
"""Seconds between attempts; RFC 5321 §4.5.4.1 asks for at least 30 minutes later on."""
DEFAULT_MAX_AGE = 432_000
"""Five days, the give-up time RFC 5321 §4.5.4.1 suggests (4-5 days; Postfix 5d)."""
DEFAULT_DELAY_NOTICE_AFTER = 14_400
"""Four hours, Postfix ``delay_warning_time`` as commonly set."""
DEFAULT_MINGER_CACHE_SECONDS = 3600
"""How long a Minger answer is trusted (one hour, as in the issue's example)."""
DEFAULT_MINGER_TIMEOUT = 5.0
"""Seconds to wait for a Minger answer, retries included (Halon's default)."""


class RouteConfigError(ValueError):
    """A [[forward]], [relay] or [queue] value is wrong.

    Attributes:
        key: the dotted key, e.g. "forward[0].server".
        expected: what was expected there, in words.
    """

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: expected {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A TCP/UDP destination: host name or IP literal, and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_HOST_NAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def parse_host_port(value: object, *, key: str) -> HostPort:
    """Parse "host:port" or "[v6]:port".

    Raises:
        RouteConfigError: naming ``key`` when the value is not a host and port.
    """
    expected = 'a string "host:port" (IPv6 as "[::1]:port")'
    if not isinstance(value, str):
        raise RouteConfigError(key, expected)
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RouteConfigError(key, expected) from None
    else:
        host, sep, port_text = value.rpartition(":")
        if ":" in host or not _HOST_NAME.fullmatch(host):
            raise RouteConfigError(key, expected)
    if not sep or not port_text.isdigit() or len(port_text) > 5 or not 0 < int(port_text) < 65536:
        raise RouteConfigError(key, expected + " with a port from 1 to 65535")
    return HostPort(host=host, port=int(port_text))


@functools.lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Turn "local@domain" with * and ? into two regexes: local exact, domain ignoring case."""
    local, _, domain = pattern.rpartition("@")

    def translate(part: str, flags: int) -> re.Pattern[str]:
        # Only * and ? are special; everything else (including [ and .) is literal.
        body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in part)
        return re.compile(body, flags | re.DOTALL)

    return translate(local, 0), translate(domain, re.IGNORECASE)


def match_address(pattern: str, address: str) -> bool:
    """Say whether ``address`` matches a wildcard ``pattern`` such as "*@branch.example.test".

    ``*`` matches any run of characters (also none), ``?`` exactly one; the local part
    compares exactly, the domain case-insensitively.
    """
    local_re, domain_re = _compile_pattern(pattern)
    local, _, domain = address.rpartition("@")
    return bool(local_re.fullmatch(local) and domain_re.fullmatch(domain))


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardRoute:
    """One [[forward]] table: addresses matching ``addresses`` go to ``server``.

    Attributes:
        addresses: the wildcard pattern, "local@domain".
        server: the next hop's SMTP address.
        verify: "minger" to ask the next hop at RCPT time whether the address exists.
        minger_server: the next hop's Minger address (verify = "minger").
        minger_secret: the shared secret for Minger digests; None sends anonymous queries.
        minger_cache_seconds: how long an answer is trusted.
        minger_timeout: seconds to wait for an answer before answering 451 4.4.3.
    """

    addresses: str
    server: HostPort
    verify: Literal["minger", "none"] = "none"
    minger_server: HostPort | None = None
    minger_secret: str | None = None
    minger_cache_seconds: int = DEFAULT_MINGER_CACHE_SECONDS
    minger_timeout: float = DEFAULT_MINGER_TIMEOUT

    def matches(self, address: str) -> bool:
        """Say whether this route takes ``address``."""
        return match_address(self.addresses, address)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySettings:
    """The [relay] table. Without a smarthost, relay recipients are refused 550 5.7.1."""

    smarthost: HostPort | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """The [queue] table: how long and how often queued mail is retried."""

    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    max_age: int = DEFAULT_MAX_AGE
    delay_notice_after: int = DEFAULT_DELAY_NOTICE_AFTER

    def retry_delay(self, attempts: int) -> int:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based); the last repeats."""
        index = min(max(attempts, 1), len(self.retry_schedule)) - 1
        return self.retry_schedule[index]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteTable:
    """The decision "where does a non-local recipient go".

    Attributes:
        forwards: the [[forward]] routes, first match wins.
        relay: the [relay] settings.
    """

    forwards: tuple[ForwardRoute, ...] = ()
    relay: RelaySettings = RelaySettings()

    def forward_for(self, address: str) -> ForwardRoute | None:
        """The first forward route whose pattern matches ``address``, or None."""
        for route in self.forwards:
            if route.matches(address):
                return route
        return None

    def next_hop(self, address: str, *, may_relay: bool) -> HostPort | None:
        """Where mail for a non-local ``address`` goes, or None when it may not go anywhere.

        Args:
            address: the recipient, "local@domain".
            may_relay: the client is in local_networks or authenticated. Forward routes
                take mail from anyone (they are our own domains' LAN servers); the
                smarthost only from such senders, so we are never an open relay.
        """
        route = self.forward_for(address)
        if route is not None:
            return route.server
        if may_relay and self.relay.smarthost is not None:
            return self.relay.smarthost
        return None


# --- parsing the TOML tables -------------------------------------------------------


def _table(value: object, key: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise RouteConfigError(key, "a table")
    return value


def _reject_unknown(table: Mapping[str, object], known: set[str], key: str) -> None:
    for name in table:
        if name not in known:
            raise RouteConfigError(
                f"{key}.{name}", "no such key; known: " + ", ".join(sorted(known))
            )


def _positive_int(value: object, key: str) -> int:
    # bool is an int in Python; TOML true is not a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RouteConfigError(key, "a positive whole number of seconds")
    return value


_ADDRESS_PATTERN = re.compile(r"[^@\s]+@[^@\s]+")


def parse_forward_tables(value: object, *, key: str = "forward") -> tuple[ForwardRoute, ...]:
    """Parse the ``[[forward]]`` array of tables.

    Raises:
        RouteConfigError: naming the key, e.g. "forward[1].verify".
    """
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RouteConfigError(key, "an array of tables ([[forward]])")
    routes = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        table = _table(item, where)
        _reject_unknown(
            table,
            {
                "addresses",
                "server",
                "verify",
                "minger_server",
                "minger_secret",
                "minger_cache_seconds",
                "minger_timeout",
            },
            where,
        )
        addresses = table.get("addresses")
        if not isinstance(addresses, str) or not _ADDRESS_PATTERN.fullmatch(addresses):
            raise RouteConfigError(
                f"{where}.addresses", 'a pattern "local@domain" with wildcards * and ?'
            )
        if "server" not in table:
            raise RouteConfigError(f"{where}.server", 'a string "host:port" (required)')
        server = parse_host_port(table["server"], key=f"{where}.server")
        verify = table.get("verify", "none")
        if verify not in ("minger", "none"):
            raise RouteConfigError(f"{where}.verify", '"minger" or "none"')
        cache = _positive_int(
            table.get("minger_cache_seconds", DEFAULT_MINGER_CACHE_SECONDS),
            f"{where}.minger_cache_seconds",
        )
        timeout = table.get("minger_timeout", DEFAULT_MINGER_TIMEOUT)
        # bool is an int in Python; TOML true is not a number of seconds.
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 60
        ):
            raise RouteConfigError(f"{where}.minger_timeout", "a number of seconds, 0 to 60")
        minger_server = None
        secret: str | None = None
        if verify == "minger":
            if "minger_server" not in table:
                raise RouteConfigError(
                    f"{where}.minger_server", 'a string "host:port" when verify = "minger"'
                )
            minger_server = parse_host_port(table["minger_server"], key=f"{where}.minger_server")
            # Absent: anonymous queries. Present: 1*50 VCHAR (draft-hathcock-minger-06 §2).
            secret_value = table.get("minger_secret")
            if secret_value is not None and (
                not isinstance(secret_value, str)
                or not 1 <= len(secret_value) <= 50
                or not all(0x21 <= ord(ch) <= 0x7E for ch in secret_value)
            ):
                raise RouteConfigError(
                    f"{where}.minger_secret", "1 to 50 printable ASCII characters, no spaces"
                )
            secret = secret_value
        routes.append(
            ForwardRoute(
                addresses=addresses,
                server=server,
                verify="minger" if verify == "minger" else "none",
                minger_server=minger_server,
                minger_secret=secret,
                minger_cache_seconds=cache,
                minger_timeout=float(timeout),
            )
        )
    return tuple(routes)


def parse_relay_table(value: object, *, key: str = "relay") -> RelaySettings:
    """Parse the ``[relay]`` table.

    Raises:
        RouteConfigError: naming the key.
    """
    table = _table(value, key)
    _reject_unknown(table, {"smarthost"}, key)
    if "smarthost" not in table:
        return RelaySettings()
    return RelaySettings(smarthost=parse_host_port(table["smarthost"], key=f"{key}.smarthost"))


def parse_queue_table(value: object, *, key: str = "queue") -> QueueSettings:
    """Parse the ``[queue]`` table.

    Raises:
        RouteConfigError: naming the key.
    """
    table = _table(value, key)
    _reject_unknown(table, {"retry_schedule", "max_age", "delay_notice_after"}, key)
    schedule_value = table.get("retry_schedule", list(DEFAULT_RETRY_SCHEDULE))
    if (
        not isinstance(schedule_value, Sequence)
        or isinstance(schedule_value, str)
        or not schedule_value
    ):
        raise RouteConfigError(f"{key}.retry_schedule", "a non-empty array of seconds")
    schedule = tuple(
        _positive_int(item, f"{key}.retry_schedule[{index}]")
        for index, item in enumerate(schedule_value)
    )
    max_age = _positive_int(table.get("max_age", DEFAULT_MAX_AGE), f"{key}.max_age")
    delay = _positive_int(
        table.get("delay_notice_after", DEFAULT_DELAY_NOTICE_AFTER), f"{key}.delay_notice_after"
    )
    return QueueSettings(retry_schedule=schedule, max_age=max_age, delay_notice_after=delay)
