"""The Minger UDP service of sansio-smtpd (draft-hathcock-minger-06 §2, §3, §4).

The wire format and every decision live in the sans-IO :mod:`minger` package; this module
only binds a UDP socket, feeds each datagram to :func:`minger.answer_datagram` and sends
back what it says. It adds three things the draft leaves to the implementer:

- Access control: only peers inside ``allowed_networks`` get an answer other than 1
  (status 1, "query from unauthorized IP", -06 §3.1).
- A per-source rate limit (token bucket, :class:`minger.RateLimiter`, clocked by
  :func:`trio.current_time`). A query over the limit is **dropped without an answer**:
  answering would let a spoofed flood turn this server into a reflector, and a
  legitimate client simply retries. The limiter keys IPv4 peers by address and IPv6 peers
  by their /64, since one IPv6 host usually holds a whole /64.
- One log line per query, on the ``trio_server.minger`` logger, with the peer, the
  mailbox (escaped), whether a digest was given, and the status sent. Rate-limited
  datagrams log one warning when a source first hits the limit, then nothing above DEBUG.

Configuration comes from the ``[minger]`` table of the server's TOML file, parsed by
:func:`parse_minger_table` into a frozen :class:`MingerSettings`; the server starts the
service with ``await nursery.start(serve_minger, settings, directory)``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

import minger

__all__ = [
    "DEFAULT_ALLOWED_NETWORKS",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_SOURCES",
    "DEFAULT_RATE_LIMIT_BURST",
    "DEFAULT_RATE_LIMIT_PER_SECOND",
    "MIN_SERVER_SECRET",
    "MingerConfigError",
    "MingerService",
    "MingerSettings",
    "make_directory",
    "parse_host_port",
    "parse_minger_table",
    "serve_minger",
]

logger = logging.getLogger("trio_server.minger")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where the service listens unless told otherwise: loopback, the IANA port (-06 §6).
DEFAULT_LISTEN: Final = ("127.0.0.1", minger.DEFAULT_PORT)
#: Who may query unless told otherwise: this host only.
DEFAULT_ALLOWED_NETWORKS: Final[tuple[Network, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
#: Queries per second each source may sustain. The draft sets no rate (notes §4); five a
#: second is ample for RCPT-time checks by a gateway that caches answers, and slows a
#: harvest of the directory to a crawl.
DEFAULT_RATE_LIMIT_PER_SECOND: Final = 5.0
#: Queries a quiet source may send at once: one message with many recipients.
DEFAULT_RATE_LIMIT_BURST: Final = 30
#: Sources the rate limiter remembers at most (about 100 bytes each).
DEFAULT_MAX_SOURCES: Final = 4096
#: The shortest secret our server accepts. -06 §5: a secret "should be at least 128
#: bits"; MDaemon asks for "at least 16 characters". The wire allows 1 (-06 §2.1), so the
#: client side accepts shorter secrets for older peers.
MIN_SERVER_SECRET: Final = 16

#: Seconds the service waits after a failed receive before trying again.
_RECEIVE_ERROR_PAUSE: Final = 0.1

_KNOWN_KEYS: Final = frozenset(
    {
        "listen",
        "secret",
        "secret_file",
        "allow_anonymous",
        "allowed_networks",
        "disabled_mailboxes",
        "rate_limit_per_second",
        "rate_limit_burst",
    }
)


class MingerConfigError(ValueError):
    """A ``[minger]`` value is wrong.

    ``str(error)`` is one line: ``SOURCE: [minger] KEY: expected WHAT, got VALUE`` when a
    source file was named, else ``KEY: expected WHAT, got VALUE`` (for a caller that
    prefixes its own file and table, as ``trio_server.config`` does).

    Attributes:
        key: the key inside the ``[minger]`` table.
        expected: what was expected there, in words.
    """

    def __init__(self, key: str, expected: str, *, source: str = "") -> None:
        where = f"{source}: [minger] " if source else ""
        super().__init__(f"{where}{key}: expected {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True, slots=True, kw_only=True)
class MingerSettings:
    """The ``[minger]`` table: how the Minger service listens and whom it answers.

    Attributes:
        listen: ``(host, port)`` to bind; the host is an IP literal. Port 0 picks a free
            port (tests).
        secret: the shared secret queries are signed with, or None.
        allow_anonymous: answer queries without a digest (-06 §4). When False, they get 2.
        allowed_networks: peers outside these networks get status 1.
        disabled_mailboxes: mailbox names (as in ``[local.mailboxes]``) that exist but
            cannot receive mail: they answer 4.
        rate_limit_per_second: sustained queries per second per source.
        rate_limit_burst: queries a quiet source may send at once.
        max_sources: sources the rate limiter tracks at most.
        max_datagram: longest query read, in bytes (notes §4).
    """

    listen: tuple[str, int] = DEFAULT_LISTEN
    secret: str | None = None
    allow_anonymous: bool = False
    allowed_networks: tuple[Network, ...] = DEFAULT_ALLOWED_NETWORKS
    disabled_mailboxes: frozenset[str] = frozenset()
    rate_limit_per_second: float = DEFAULT_RATE_LIMIT_PER_SECOND
    rate_limit_burst: int = DEFAULT_RATE_LIMIT_BURST
    max_sources: int = DEFAULT_MAX_SOURCES
    max_datagram: int = minger.MAX_DATAGRAM

    def __post_init__(self) -> None:
        if self.secret is None:
            if not self.allow_anonymous:
                raise MingerConfigError(
                    "secret", "a secret, or allow_anonymous = true (otherwise every answer is 2)"
                )
        elif not _secret_ok(self.secret):
            raise MingerConfigError("secret", _SECRET_EXPECTED)
        if not (math.isfinite(self.rate_limit_per_second) and self.rate_limit_per_second > 0):
            raise MingerConfigError("rate_limit_per_second", "a number greater than 0")
        if self.rate_limit_burst < 1:
            raise MingerConfigError("rate_limit_burst", "an integer of at least 1")
        if not self.allowed_networks:
            raise MingerConfigError("allowed_networks", "at least one network")
        if not 0 <= self.listen[1] <= 65535:
            raise MingerConfigError("listen", "a port from 0 to 65535")


_SECRET_EXPECTED = (
    f"{MIN_SERVER_SECRET} to {minger.MAX_SECRET} visible ASCII characters, no spaces"
    " (-06 §2.1; at least 16 per -06 §5 and MDaemon)"
)


def _secret_ok(secret: str) -> bool:
    try:
        minger.validate_secret(secret)
    except minger.MingerError:
        return False
    return len(secret) >= MIN_SERVER_SECRET


def parse_host_port(text: str, *, default_port: int = minger.DEFAULT_PORT) -> tuple[str, int]:
    """Parse ``"host:port"``, ``"[v6]:port"``, or a bare host (``default_port`` then).

    Args:
        text: the address as written by a user.
        default_port: the port when none is written.

    Returns:
        ``(host, port)`` with IPv6 brackets removed; the host is not resolved.

    Raises:
        ValueError: the text is not a host and a port from 0 to 65535.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [IPv6]:port")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a bare host, or a bare IPv6 address
        host, port_text = text, ""
    if not host or any(ch.isspace() for ch in host):
        raise ValueError(f"{text!r} has no host")
    if not port_text and not text.endswith(":"):
        return host, default_port
    # isascii() first: str.isdigit() also accepts digits int() refuses, such as "²".
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not (digits and int(port_text) <= 65535):
        raise ValueError(f"{text!r} has no port from 0 to 65535")
    return host, int(port_text)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"the string '{minger.escape_text(value, limit=60)}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"a {type(value).__name__}"


def parse_minger_table(
    table: Mapping[str, object], *, source: str = "", base_dir: Path | None = None
) -> MingerSettings:
    """Validate the ``[minger]`` TOML table and build :class:`MingerSettings`.

    Keys (all optional; see docs/minger.md for the full reference):

    - ``listen``: ``"host:port"`` with an IP literal host, default ``127.0.0.1:4069``.
    - ``secret``: 16 to 50 visible ASCII characters, no spaces (-06 §2.1; 16 is our
      minimum, -06 §5 and MDaemon). Or ``secret_file``: a file holding it (a path relative
      to ``base_dir``), so the secret stays out of a config that may be shared.
    - ``allow_anonymous``: boolean, default false.
    - ``allowed_networks``: list of CIDR strings, default loopback only.
    - ``disabled_mailboxes``: list of mailbox names answered 4.
    - ``rate_limit_per_second`` (number > 0), ``rate_limit_burst`` (integer >= 1).

    Args:
        table: the parsed ``[minger]`` table.
        source: the config file's name, for error messages.
        base_dir: the folder ``secret_file`` is relative to (the config's folder).

    Returns:
        The settings.

    Raises:
        MingerConfigError: an unknown key, a wrong type or a bad value; the message names
            the key and what was expected, and never repeats a secret.
    """

    def fail(key: str, expected: str, value: object = None) -> MingerConfigError:
        got = "" if value is None else f", got {_describe(value)}"
        return MingerConfigError(key, expected + got, source=source)

    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise fail(unknown[0], "one of " + ", ".join(sorted(_KNOWN_KEYS)) + " (unknown key)")

    listen = DEFAULT_LISTEN
    if "listen" in table:
        value = table["listen"]
        expected = 'a string "ip:port" (IPv6 as "[::1]:port")'
        if not isinstance(value, str):
            raise fail("listen", expected, value)
        try:
            listen = parse_host_port(value)
            ipaddress.ip_address(listen[0])
        except ValueError:
            raise fail("listen", expected, value) from None

    secret = _parse_secret(table, base_dir, fail)

    allow_anonymous = table.get("allow_anonymous", False)
    if not isinstance(allow_anonymous, bool):
        raise fail("allow_anonymous", "true or false", allow_anonymous)
    if secret is None and not allow_anonymous:
        raise fail("secret", "a secret (or secret_file), or allow_anonymous = true")

    networks = DEFAULT_ALLOWED_NETWORKS
    if "allowed_networks" in table:
        value = table["allowed_networks"]
        expected = 'a non-empty list of networks such as "192.0.2.0/24" or "::1/128"'
        if not isinstance(value, list) or not value:
            raise fail("allowed_networks", expected, value)
        parsed = []
        for item in value:
            if not isinstance(item, str):
                raise fail("allowed_networks", expected, item)
            try:
                parsed.append(ipaddress.ip_network(item, strict=True))
            except ValueError:
                raise fail("allowed_networks", expected + " (host bits zero)", item) from None
        networks = tuple(parsed)

    disabled: frozenset[str] = frozenset()
    if "disabled_mailboxes" in table:
        value = table["disabled_mailboxes"]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail("disabled_mailboxes", "a list of mailbox names", value)
        disabled = frozenset(str(v) for v in value)

    rate = table.get("rate_limit_per_second", DEFAULT_RATE_LIMIT_PER_SECOND)
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not (math.isfinite(rate) and rate > 0)
    ):
        raise fail("rate_limit_per_second", "a number greater than 0", rate)
    burst = table.get("rate_limit_burst", DEFAULT_RATE_LIMIT_BURST)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise fail("rate_limit_burst", "an integer of at least 1", burst)

    return MingerSettings(
        listen=listen,
        secret=secret,
        allow_anonymous=allow_anonymous,
        allowed_networks=networks,
        disabled_mailboxes=disabled,
        rate_limit_per_second=float(rate),
        rate_limit_burst=burst,
    )


def _parse_secret(
    table: Mapping[str, object],
    base_dir: Path | None,
    fail: Callable[..., MingerConfigError],
) -> str | None:
    if "secret" in table and "secret_file" in table:
        raise fail("secret_file", "either secret or secret_file, not both")
    if "secret_file" in table:
        value = table["secret_file"]
        if not isinstance(value, str) or not value:
            raise fail("secret_file", "a file name", value)
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            # Secrets hold no whitespace, so stripping only removes the file's newline.
            secret: object = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not ASCII text"
            raise fail("secret_file", f"a readable file ({path}: {reason})") from None
        key = "secret_file"
    elif "secret" in table:
        secret = table["secret"]
        key = "secret"
    else:
        return None
    # The value itself is never echoed: it is (or was meant to be) a secret.
    if not isinstance(secret, str) or not _secret_ok(secret):
        got = f" (got {len(secret)} characters)" if isinstance(secret, str) else ""
        raise fail(key, _SECRET_EXPECTED + got)
    return secret


def make_directory(
    *,
    is_local_domain: Callable[[str], bool],
    mailbox_for: Callable[[str], str | None],
    disabled_mailboxes: Collection[str] = (),
) -> minger.Lookup:
    """Build the service's directory from the server's own mailbox lookups.

    Args:
        is_local_domain: whether a domain is one of ours (the server's rule, e.g.
            ``LocalSettings.is_local_domain``: case-insensitive).
        mailbox_for: the mailbox a local part is delivered into, or None (e.g.
            ``LocalSettings.mailbox_for``), so Minger answers exactly as RCPT TO would.
        disabled_mailboxes: mailbox names that exist but cannot receive mail.

    Returns:
        A lookup answering 5 for a deliverable address, 4 for one whose mailbox is
        disabled, and 3 for everything else, other domains included.
    """
    disabled = frozenset(disabled_mailboxes)

    def lookup(mailbox: str) -> minger.Status:
        local, _, domain = mailbox.rpartition("@")
        if not is_local_domain(domain):
            return minger.Status.NOT_FOUND
        name = mailbox_for(local)
        if name is None:
            return minger.Status.NOT_FOUND
        return minger.Status.DISABLED if name in disabled else minger.Status.ACTIVE

    return lookup


def _peer_ip(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The peer's IP address, with an IPv4-mapped IPv6 address unwrapped."""
    host = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _rate_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((address, 64), strict=False)
    return address


def _printable(text: str) -> str:
    """Escape only what is not printable: for our own messages, which already escape
    the peer's bytes (so a backslash is not doubled twice) but may cite "§"."""
    return "".join(ch if ch.isprintable() else minger.escape_text(ch) for ch in text)


def _peer_text(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = str(peer[0]), peer[1]
        return minger.escape_text(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return minger.escape_text(str(peer))


class MingerService:
    """The per-datagram logic of the service, without the socket.

    Args:
        settings: the ``[minger]`` settings.
        directory: the lookup for mailboxes that passed every check. It runs on the event
            loop, so it must be quick and must not block.
    """

    def __init__(self, settings: MingerSettings, directory: minger.Lookup) -> None:
        self.settings = settings
        self.directory = directory
        self.limiter = minger.RateLimiter(
            rate=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            max_sources=settings.max_sources,
        )

    def handle(self, data: bytes, peer: object, now: float) -> bytes | None:
        """Decide the answer to one datagram and log it.

        Args:
            data: the payload as received (possibly one byte longer than the limit, so
                over-long datagrams are seen as such).
            peer: the sender's socket address.
            now: the current time, in seconds.

        Returns:
            The response payload to send back to ``peer``, or None to send nothing
            (rate limited, nothing to echo, or the directory failed).
        """
        shown = _peer_text(peer)
        try:
            address = _peer_ip(peer)
        except ValueError:
            logger.warning("minger peer=%s dropped: not an IP peer", shown)
            return None
        verdict = self.limiter.check(_rate_key(address), now)
        if verdict is minger.RateVerdict.LIMIT_ENGAGED:
            logger.warning("minger peer=%s rate limit engaged: dropping its queries", shown)
            return None
        if verdict is minger.RateVerdict.REFUSE:
            logger.debug("minger peer=%s dropped: rate limited", shown)
            return None
        allowed = any(address in network for network in self.settings.allowed_networks)
        try:
            answer = minger.answer_datagram(
                data,
                peer_allowed=allowed,
                secret=self.settings.secret,
                allow_anonymous=self.settings.allow_anonymous,
                lookup=self.directory,
                max_size=self.settings.max_datagram,
            )
        except Exception:
            # No status means "try later" (-06 §3.1): the client times out and retries.
            logger.exception("minger peer=%s no answer: the directory failed", shown)
            return None
        response = answer.response
        status = "none" if response is None else f"{int(response.status)} {response.status.name}"
        if answer.query is not None:
            logger.info(
                "minger peer=%s mailbox=%s auth=%s status=%s",
                shown,
                minger.escape_text(answer.query.mailbox),
                "anonymous" if answer.query.digest is None else "digest",
                status,
            )
        else:
            logger.info(
                "minger peer=%s malformed (%s) status=%s",
                shown,
                _printable(answer.error or ""),
                status,
            )
        return None if response is None else minger.encode_response(response)


async def serve_minger(
    settings: MingerSettings,
    directory: minger.Lookup,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer Minger queries on ``settings.listen`` until cancelled.

    Meant for ``await nursery.start(serve_minger, settings, directory)``: the socket is
    bound before ``start`` returns, and the bound ``(host, port)`` is its value, so port 0
    works in tests.

    Args:
        settings: the ``[minger]`` settings.
        directory: the mailbox lookup (see :func:`make_directory`).
        task_status: filled in by ``nursery.start``.

    Raises:
        OSError: the address cannot be bound.
    """
    service = MingerService(settings, directory)
    host, port = settings.listen
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind((host, port))
        name = sock.getsockname()
        bound = (str(name[0]), int(name[1]))
        logger.info("minger listening on udp %s", _peer_text(bound))
        task_status.started(bound)
        # One byte over the limit, so an over-long datagram is seen as over-long rather
        # than silently truncated by the kernel.
        size = settings.max_datagram + 1
        while True:  # runs until the caller's cancel scope ends it
            try:
                data, peer = await sock.recvfrom(size)
            except OSError as error:  # e.g. an ICMP error surfaced by some platforms
                logger.warning("minger receive failed: %s", error)
                # Pause so that an error that repeats cannot spin the loop or flood the log.
                await trio.sleep(_RECEIVE_ERROR_PAUSE)
                continue
            reply = service.handle(data, peer, trio.current_time())
            if reply is None:
                continue
            try:
                await sock.sendto(reply, peer)
            except OSError as error:
                logger.warning("minger peer=%s send failed: %s", _peer_text(peer), error)
