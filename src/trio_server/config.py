"""The sansio-smtpd configuration: one frozen dataclass tree loaded from TOML.

The key names in the file are the interface (docs/config.md lists every one with its
default). Loading is strict: an unknown key, a wrong type, a missing file or a malformed
``host:port`` or network raises :class:`ConfigError`, whose message names the file, the
key and what was expected, so the command line can print one line and exit 2.

Relative paths are taken relative to the folder holding the configuration file, so the
same file works whatever the current directory is.

``[[forward]]``, ``[relay]`` and ``[queue]`` are validated by the parsers in
:mod:`trio_server.routes` and kept in :attr:`Config.routes` / :attr:`Config.queue`;
the daemon builds its forwarding router and queue from them (docs/forwarding.md).
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from .routes import (
    ForwardRoute,
    QueueSettings,
    RelaySettings,
    RouteConfigError,
    RouteTable,
    parse_forward_tables,
    parse_queue_table,
    parse_relay_table,
)

__all__ = [
    "Config",
    "ConfigError",
    "ListenAddress",
    "LocalSettings",
    "Network",
    "SMTPSettings",
    "ServerSettings",
    "TLSSettings",
    "load_config",
    "parse_config",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_T = TypeVar("_T")

# RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126 (printable, no colon).
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# A mailbox name becomes a directory under maildir_root: keep it one safe path component.
_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# RFC 1123 host name labels; only used to sanity-check listen hosts.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_LISTEN = re.compile(
    r"\[(?P<v6>[^\]]+)\]:(?P<port6>[0-9]{1,5})|(?P<host>[^:\[\]]+):(?P<port>[0-9]{1,5})"
)


class ConfigError(Exception):
    """The configuration file cannot be used.

    ``str(error)`` is one line: ``FILE: KEY: what was expected``.
    """

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file = str(file)
        self.key = key
        self.message = message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenAddress:
    """One address to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The ``[server]`` table: listening, limits and timeouts."""

    hostname: str
    listen: tuple[ListenAddress, ...] = (ListenAddress(host="127.0.0.1", port=2525),)
    # Postfix message_size_limit is 10240000; the example uses 10 MiB.
    max_message_size: int | None = 10_485_760
    # RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
    max_recipients: int = 100
    # Postfix default_process_limit is 100.
    max_connections: int = 100
    # RFC 5321 §4.5.3.2.7: the server should wait at least 5 minutes for the next command.
    command_timeout: float = 300.0
    # RFC 5321 §4.5.3.2.6 asks the client for 10 minutes after the final dot; we give the
    # whole data phase at most this long without progress.
    data_timeout: float = 600.0
    # Postfix smtpd_min_data_rate: each byte received buys 1/min_data_rate more seconds.
    min_data_rate: float = 500.0
    # How long in-flight transactions may run after SIGTERM/SIGINT.
    shutdown_timeout: float = 30.0
    # A failed AUTH is answered only after this pause (Dovecot auth_failure_delay: 2 s),
    # which slows password guessing without costing the server anything.
    auth_failure_delay: float = 2.0
    # Failed AUTH attempts per session before 421 4.7.0 and close (Exim and Postfix
    # close after a few; each attempt costs a 32 MiB scrypt).
    max_auth_failures: int = 3
    local_networks: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    spool_dir: Path = Path("var/spool")
    bare_newlines: Literal["reject", "normalize"] = "reject"


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSSettings:
    """The ``[tls]`` table: present means STARTTLS is offered."""

    certificate: Path
    private_key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SMTPSettings:
    """The ``[smtp]`` table: the VPOP3 "SMTP Advanced" options."""

    refuse_helo_containing: tuple[str, ...] = ()
    dsn: bool = True
    forbid_percent_in_address: bool = True
    forbid_bang_in_address: bool = True
    add_missing_date_header: bool = True
    add_original_recipients_header: bool = False
    original_recipients_header: str = "X-Original-To"
    log_rejected_recipients: bool = False
    rejected_recipients_log: Path = Path("var/log/badsmtprecipients.log")


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalSettings:
    """The ``[local]`` table: local domains, Maildir root, mailboxes and passwords."""

    domains: frozenset[str] = frozenset()
    maildir_root: Path = Path("var/mail")
    # mailbox name -> the local parts delivered into it, as written in the file.
    mailboxes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # user name -> password hash made by ``sansio-smtpd hash-password``.
    passwords: Mapping[str, str] = field(default_factory=dict)
    _index: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def is_local_domain(self, domain: str) -> bool:
        """Whether ``domain`` is one of ours (case-insensitive, trailing dot ignored)."""
        return domain.rstrip(".").lower() in self.domains

    def mailbox_for(self, local_part: str) -> str | None:
        """The mailbox a local part is delivered into, or None (case-insensitive)."""
        return self._index.get(local_part.lower())

    def __post_init__(self) -> None:
        # One dict lookup per RCPT, however many mailboxes there are.
        index = {part.lower(): name for name, parts in self.mailboxes.items() for part in parts}
        object.__setattr__(self, "_index", index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration, as loaded from one file."""

    path: Path
    server: ServerSettings
    tls: TLSSettings | None
    smtp: SMTPSettings
    local: LocalSettings
    # Parsed by trio_server.minger_service.parse_minger_table when that module exists.
    minger: object | None = None
    # [[forward]] and [relay] (trio_server.routes), and the outgoing queue's [queue].
    routes: RouteTable = field(default_factory=RouteTable)
    queue: QueueSettings = field(default_factory=QueueSettings)


_MISSING = object()


class _Table:
    """A TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, file: Path, name: str, data: Mapping[str, object]) -> None:
        self.file = file
        self.name = name
        self.data = data
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.key(key), message)

    def _get(
        self, key: str, expected: str, check: Callable[[object], bool], default: object
    ) -> object:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, f"missing; expected {expected}")
            return default
        value = self.data[key]
        if not check(value):
            raise self.error(key, f"expected {expected}, got {_describe(value)}")
        return value

    def string(self, key: str, default: object = _MISSING) -> str:
        value = self._get(key, "a string", lambda v: isinstance(v, str), default)
        assert isinstance(value, str)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, "true or false", lambda v: isinstance(v, bool), default)
        assert isinstance(value, bool)
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        expected = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum else "")
        value = self._get(
            key,
            expected,
            lambda v: (
                isinstance(v, int)
                and not isinstance(v, bool)
                and v >= minimum
                and (maximum is None or v <= maximum)
            ),
            default,
        )
        assert isinstance(value, int)
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self._get(
            key,
            "a positive number of seconds",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
            default,
        )
        assert isinstance(value, int | float)
        return float(value)

    def strings(
        self, key: str, default: tuple[str, ...], *, non_empty: bool = False
    ) -> tuple[str, ...]:
        expected = "a list of " + ("non-empty " if non_empty else "") + "strings"
        value = self._get(
            key,
            expected,
            lambda v: (
                isinstance(v, list)
                and all(isinstance(item, str) and (item or not non_empty) for item in v)
            ),
            default,
        )
        assert isinstance(value, list | tuple)
        return tuple(str(item) for item in value)

    def path(self, key: str, default: Path) -> Path:
        text = self.string(key, str(default))
        if not text or "\x00" in text:
            raise self.error(key, "expected a path, got an empty or invalid string")
        return (self.file.parent / text).resolve()

    def table(self, key: str) -> _Table | None:
        value = self._get(key, "a table", lambda v: isinstance(v, dict), None)
        if value is None:
            return None
        assert isinstance(value, dict)
        return _Table(self.file, self.key(key), value)

    def finish(self) -> None:
        """Refuse keys nobody asked for (typos must not pass silently)."""
        for key in self.data:
            if key not in self.used:
                raise self.error(key, "unknown key")


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, list):
        return "a list" if all(not isinstance(v, dict) for v in value) else "an array of tables"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _parse_listen(table: _Table, key: str, items: tuple[str, ...]) -> tuple[ListenAddress, ...]:
    result = []
    for index, text in enumerate(items):
        where = f"{key}[{index}]"
        match = _LISTEN.fullmatch(text)
        if match is None:
            raise table.error(where, f'expected "host:port" or "[ipv6]:port", got {text!r}')
        host = match["v6"] or match["host"]
        port = int(match["port6"] or match["port"])
        if port > 65535:
            raise table.error(where, f"expected a port from 0 to 65535, got {port}")
        if match["v6"] is not None:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise table.error(
                    where, f"expected an IPv6 address in brackets, got {host!r}"
                ) from None
        elif not _is_ipv4(host) and _HOSTNAME.fullmatch(host) is None:
            raise table.error(where, f"expected a host name or IP address, got {host!r}")
        result.append(ListenAddress(host=host, port=port))
    if not result:
        raise table.error(key, "expected at least one address")
    return tuple(result)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _parse_networks(table: _Table, key: str, items: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for index, text in enumerate(items):
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as error:
            raise table.error(
                f"{key}[{index}]", f'expected a network such as "192.0.2.0/24" ({error})'
            ) from None
    return tuple(networks)


def _server(root: _Table) -> ServerSettings:
    table = root.table("server") or _Table(root.file, "server", {})
    defaults = ServerSettings(hostname="")
    hostname = table.string("hostname", socket.gethostname())
    if not hostname or any(c.isspace() or not c.isprintable() for c in hostname):
        raise table.error("hostname", f"expected a host name without spaces, got {hostname!r}")
    listen = _parse_listen(table, "listen", table.strings("listen", ("127.0.0.1:2525",)))
    size = table.integer("max_message_size", defaults.max_message_size or 0, minimum=0)
    bare = table.string("bare_newlines", defaults.bare_newlines)
    if bare not in ("reject", "normalize"):
        raise table.error("bare_newlines", f'expected "reject" or "normalize", got {bare!r}')
    networks = table.strings("local_networks", tuple(str(n) for n in defaults.local_networks))
    settings = ServerSettings(
        hostname=hostname,
        listen=listen,
        max_message_size=size or None,
        max_recipients=table.integer("max_recipients", defaults.max_recipients, minimum=1),
        max_connections=table.integer("max_connections", defaults.max_connections, minimum=1),
        command_timeout=table.seconds("command_timeout", defaults.command_timeout),
        data_timeout=table.seconds("data_timeout", defaults.data_timeout),
        min_data_rate=table.seconds("min_data_rate", defaults.min_data_rate),
        shutdown_timeout=table.seconds("shutdown_timeout", defaults.shutdown_timeout),
        auth_failure_delay=table.seconds("auth_failure_delay", defaults.auth_failure_delay),
        max_auth_failures=table.integer("max_auth_failures", defaults.max_auth_failures, minimum=1),
        local_networks=_parse_networks(table, "local_networks", networks),
        spool_dir=table.path("spool_dir", defaults.spool_dir),
        bare_newlines="reject" if bare == "reject" else "normalize",
    )
    table.finish()
    return settings


def _existing_file(table: _Table, key: str) -> Path:
    path = table.path(key, Path(table.string(key)))
    if not path.is_file():
        raise table.error(key, f"expected an existing file, {path} does not exist")
    return path


def _tls(root: _Table) -> TLSSettings | None:
    table = root.table("tls")
    if table is None:
        return None
    settings = TLSSettings(
        certificate=_existing_file(table, "certificate"),
        private_key=_existing_file(table, "private_key"),
    )
    table.finish()
    return settings


def _smtp(root: _Table) -> SMTPSettings:
    table = root.table("smtp") or _Table(root.file, "smtp", {})
    d = SMTPSettings()
    header = table.string("original_recipients_header", d.original_recipients_header)
    if _FIELD_NAME.fullmatch(header) is None:
        raise table.error(
            "original_recipients_header",
            f"expected a header field name (printable ASCII, no colon or space), got {header!r}",
        )
    settings = SMTPSettings(
        refuse_helo_containing=table.strings(
            "refuse_helo_containing", d.refuse_helo_containing, non_empty=True
        ),
        dsn=table.boolean("dsn", d.dsn),
        forbid_percent_in_address=table.boolean(
            "forbid_percent_in_address", d.forbid_percent_in_address
        ),
        forbid_bang_in_address=table.boolean("forbid_bang_in_address", d.forbid_bang_in_address),
        add_missing_date_header=table.boolean("add_missing_date_header", d.add_missing_date_header),
        add_original_recipients_header=table.boolean(
            "add_original_recipients_header", d.add_original_recipients_header
        ),
        original_recipients_header=header,
        log_rejected_recipients=table.boolean("log_rejected_recipients", d.log_rejected_recipients),
        rejected_recipients_log=table.path("rejected_recipients_log", d.rejected_recipients_log),
    )
    table.finish()
    return settings


def _local(root: _Table, check_hash: Callable[[str], None]) -> LocalSettings:
    table = root.table("local") or _Table(root.file, "local", {})
    d = LocalSettings()
    domains = []
    for index, domain in enumerate(table.strings("domains", ())):
        name = domain.rstrip(".").lower()
        if _HOSTNAME.fullmatch(name) is None:
            raise table.error(f"domains[{index}]", f"expected a domain name, got {domain!r}")
        domains.append(name)
    mailboxes: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    boxes = table.table("mailboxes") or _Table(root.file, table.key("mailboxes"), {})
    for name in boxes.data:
        if _MAILBOX_NAME.fullmatch(name) is None:
            raise boxes.error(
                name, "expected a mailbox name of letters, digits, '.', '_' or '-' (a folder name)"
            )
        parts = boxes.strings(name, (), non_empty=True)
        for part in parts:
            if any(not c.isprintable() or c.isspace() for c in part) or "@" in part:
                raise boxes.error(name, f"expected local parts without '@' or spaces, got {part!r}")
            if part.lower() in owner:
                raise boxes.error(
                    name, f"local part {part!r} is already delivered into {owner[part.lower()]!r}"
                )
            owner[part.lower()] = name
        mailboxes[name] = parts
    boxes.finish()
    passwords: dict[str, str] = {}
    secrets = table.table("passwords") or _Table(root.file, table.key("passwords"), {})
    for user in secrets.data:
        value = secrets.string(user)
        try:
            check_hash(value)
        except ValueError as error:
            raise secrets.error(
                user, f"expected a hash made by 'sansio-smtpd hash-password' ({error})"
            ) from None
        passwords[user] = value
    secrets.finish()
    settings = LocalSettings(
        domains=frozenset(domains),
        maildir_root=table.path("maildir_root", d.maildir_root),
        mailboxes=mailboxes,
        passwords=passwords,
    )
    table.finish()
    return settings


def _routes(root: _Table) -> tuple[RouteTable, QueueSettings]:
    """[[forward]], [relay] and [queue], parsed by trio_server.routes."""
    try:
        forwards: tuple[ForwardRoute, ...] = ()
        relay = RelaySettings()
        queue = QueueSettings()
        if "forward" in root.data:
            root.used.add("forward")
            forwards = parse_forward_tables(root.data["forward"])
        if "relay" in root.data:
            root.used.add("relay")
            relay = parse_relay_table(root.data["relay"])
        if "queue" in root.data:
            root.used.add("queue")
            queue = parse_queue_table(root.data["queue"])
    except RouteConfigError as error:
        raise ConfigError(root.file, error.key, f"expected {error.expected}") from None
    return RouteTable(forwards=forwards, relay=relay), queue


def _minger(root: _Table) -> object | None:
    if "minger" not in root.data:
        return None
    root.used.add("minger")
    # Imported by name: the Minger helper owns that module and may not have written it yet.
    try:
        module = importlib.import_module("trio_server.minger_service")
        parse_minger_table: Callable[..., object] = module.parse_minger_table
    except (ImportError, AttributeError):
        raise root.error("minger", "the Minger service is not available in this build") from None
    value = root.data["minger"]
    if not isinstance(value, dict):
        raise root.error("minger", f"expected a table, got {_describe(value)}")
    try:
        return parse_minger_table(value, base_dir=root.file.parent)
    except ConfigError:
        raise
    except ValueError as error:
        raise root.error("minger", str(error)) from None


def parse_config(data: Mapping[str, object], path: Path) -> Config:
    """Build a :class:`Config` from an already-parsed TOML document.

    Args:
        data: the document, as returned by :func:`tomllib.load`.
        path: the file it came from; relative paths are resolved against its folder.

    Raises:
        ConfigError: anything wrong in the document; nothing is half-loaded.
    """
    from trio_server.passwords import parse_hash

    root = _Table(path, "", data)
    routes, queue = _routes(root)
    config = Config(
        path=path,
        server=_server(root),
        tls=_tls(root),
        smtp=_smtp(root),
        local=_local(root, lambda text: _discard(parse_hash(text))),
        minger=_minger(root),
        routes=routes,
        queue=queue,
    )
    root.finish()
    return config


def _discard(value: _T) -> None:
    del value


def load_config(path: Path | str) -> Config:
    """Read and validate the configuration file at ``path``.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or holds a bad value.
    """
    path = Path(path).absolute()
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as error:
        raise ConfigError(path, "", f"cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, "", f"not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not valid TOML: the file is not UTF-8") from None
    return parse_config(data, path)
