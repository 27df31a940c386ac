"""The durable queue for mail that leaves through a forward route or the smarthost.

Layout under ``spool_dir``::

    tmp/           files being written; emptied at start (nothing there was ever promised)
    queue/ID.eml   the message as it will be sent, our trace header on top (CRLF lines)
    queue/ID.json  its envelope: sender, DSN parameters, per-recipient state
    corrupt/       envelopes that could not be read back, kept for the admin, never deleted

A message exists exactly when ``queue/ID.json`` exists. Every change is the same three
steps: write a new file in ``tmp/`` and fsync it, ``rename()`` it into place (atomic on
POSIX), fsync the directory so the rename itself survives a power cut. Committing a
new message renames the ``.eml`` first and the ``.json`` last, so a crash in between
leaves an ``.eml`` without envelope: that message was never answered 250, and the
rescan at start deletes it. Removing goes the other way (envelope first).

Delivery state lives per recipient in the envelope. After the next hop's 250 the
delivery loop rewrites the envelope (recipient "delivered") before it does anything
else, so after a restart nothing is sent twice unless the crash fell between the
next hop's 250 and that rewrite (RFC 5321 §6.1 accepts such duplicates; losing mail
is never acceptable).

All methods block on disk I/O; call them from Trio through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = [
    "Envelope",
    "Recipient",
    "RecipientState",
    "Spool",
    "SpoolError",
    "SpoolWriter",
]

RecipientState = Literal["pending", "delivered", "relayed", "failed"]
_STATES = ("pending", "delivered", "relayed", "failed")
_FORMAT_VERSION = 1


class SpoolError(Exception):
    """The spool cannot be used (not a directory, or an envelope that does not parse)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """One envelope recipient and where its delivery stands.

    Attributes:
        address: the forward-path as given in RCPT TO, without angle brackets.
        next_hop: "host:port" of the server it goes to.
        notify: the NOTIFY keywords, or None when NOTIFY was absent (RFC 3461 §4.1).
        orcpt: (addr-type, address) from ORCPT, xtext-decoded, or None (RFC 3461 §4.2).
        state: "pending" until delivered, relayed (handed to a non-DSN hop) or failed.
        attempts: delivery attempts so far.
        next_attempt: when to try next, seconds since the epoch.
        delay_notified: a "delayed" report was already made.
        status: the last RFC 3463 status seen, e.g. "4.4.1".
        diagnostic: the last reply from the next hop, or our own explanation.
        remote_mta: the next hop that gave ``diagnostic``.
        report_due: the DSN action ("failed", "delayed", "relayed", "delivered") owed
            for this recipient and not yet handed over, or None.
    """

    address: str
    next_hop: str
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    state: RecipientState = "pending"
    attempts: int = 0
    next_attempt: float = 0.0
    delay_notified: bool = False
    status: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None
    report_due: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A queued message's envelope.

    Attributes:
        id: the queue id (hex, safe in a file name).
        sender: the reverse-path; "" for the null path ``<>``.
        arrival: when we accepted it, seconds since the epoch.
        recipients: the recipients, in RCPT order.
        envid: ENVID, xtext-decoded (RFC 3461 §4.4), or None.
        ret: "FULL", "HDRS" or None (RFC 3461 §4.3).
        body: the BODY parameter to repeat to the next hop ("8BITMIME", ...), or None.
        smtputf8: the message needs SMTPUTF8 at the next hop.
        received_from: the client's name for Received-From-MTA, or None.
        size: the message size in octets.
    """

    id: str
    sender: str
    arrival: float
    recipients: tuple[Recipient, ...]
    envid: str | None = None
    ret: str | None = None
    body: str | None = None
    smtputf8: bool = False
    received_from: str | None = None
    size: int = 0

    @property
    def pending(self) -> tuple[Recipient, ...]:
        """The recipients still to be delivered."""
        return tuple(r for r in self.recipients if r.state == "pending")

    def with_recipients(self, recipients: tuple[Recipient, ...]) -> Envelope:
        """A copy with new recipient states."""
        return dataclasses.replace(self, recipients=recipients)


def _envelope_to_json(envelope: Envelope) -> bytes:
    data = dataclasses.asdict(envelope)
    data["version"] = _FORMAT_VERSION
    return json.dumps(data, ensure_ascii=True, indent=1, sort_keys=True).encode("ascii")


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise SpoolError(f"{name}: expected a string or null")


def _recipient_from_json(item: object) -> Recipient:
    if not isinstance(item, dict):
        raise SpoolError("recipient: expected an object")
    address, next_hop, state = item.get("address"), item.get("next_hop"), item.get("state")
    if not isinstance(address, str) or not isinstance(next_hop, str) or state not in _STATES:
        raise SpoolError("recipient: address, next_hop or state missing")
    notify = item.get("notify")
    if notify is not None and not (
        isinstance(notify, list) and all(isinstance(word, str) for word in notify)
    ):
        raise SpoolError("recipient.notify: expected a list of strings")
    orcpt = item.get("orcpt")
    if orcpt is not None and not (
        isinstance(orcpt, list) and len(orcpt) == 2 and all(isinstance(p, str) for p in orcpt)
    ):
        raise SpoolError("recipient.orcpt: expected [type, address]")
    attempts, next_attempt = item.get("attempts", 0), item.get("next_attempt", 0.0)
    if not isinstance(attempts, int) or not isinstance(next_attempt, int | float):
        raise SpoolError("recipient: attempts or next_attempt not a number")
    return Recipient(
        address=address,
        next_hop=next_hop,
        notify=None if notify is None else tuple(notify),
        orcpt=None if orcpt is None else (orcpt[0], orcpt[1]),
        state=state,
        attempts=attempts,
        next_attempt=float(next_attempt),
        delay_notified=bool(item.get("delay_notified", False)),
        status=_optional_str(item.get("status"), "status"),
        diagnostic=_optional_str(item.get("diagnostic"), "diagnostic"),
        remote_mta=_optional_str(item.get("remote_mta"), "remote_mta"),
        report_due=_optional_str(item.get("report_due"), "report_due"),
    )


def _envelope_from_json(raw: bytes) -> Envelope:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SpoolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
        raise SpoolError("not a version 1 envelope")
    ident, sender, arrival = data.get("id"), data.get("sender"), data.get("arrival")
    recipients = data.get("recipients")
    if (
        not isinstance(ident, str)
        or not isinstance(sender, str)
        or not isinstance(arrival, int | float)
        or not isinstance(recipients, list)
    ):
        raise SpoolError("id, sender, arrival or recipients missing")
    size = data.get("size", 0)
    if not isinstance(size, int):
        raise SpoolError("size: expected a number")
    return Envelope(
        id=ident,
        sender=sender,
        arrival=float(arrival),
        recipients=tuple(_recipient_from_json(item) for item in recipients),
        envid=_optional_str(data.get("envid"), "envid"),
        ret=_optional_str(data.get("ret"), "ret"),
        body=_optional_str(data.get("body"), "body"),
        smtputf8=bool(data.get("smtputf8", False)),
        received_from=_optional_str(data.get("received_from"), "received_from"),
        size=size,
    )


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _is_queue_id(name: str) -> bool:
    return 0 < len(name) <= 64 and all(ch in "0123456789ABCDEF" for ch in name)


class SpoolWriter:
    """A message being written into the spool; nothing is promised until :meth:`commit`."""

    def __init__(self, spool: Spool, queue_id: str) -> None:
        self._spool = spool
        self.id = queue_id
        self._path = spool.root / "tmp" / f"{queue_id}.eml"
        # Unbuffered, so bytes written through fileno() and write() keep their order.
        self._file: BinaryIO | None = open(self._path, "xb", buffering=0)  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append message bytes (CRLF line endings, already unstuffed)."""
        if self._file is None:
            raise SpoolError("message already committed or aborted")
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]

    def fileno(self) -> int:
        """The file descriptor, for copying content straight in (``os.write``)."""
        if self._file is None:
            raise SpoolError("message already committed or aborted")
        return self._file.fileno()

    def commit(self, envelope: Envelope) -> Envelope:
        """Make the message durable; only after this returns may the server answer 250.

        Args:
            envelope: the envelope; its ``id`` and ``size`` are replaced by this writer's.

        Returns:
            The envelope as stored.

        Raises:
            OSError: the disk refused; nothing is queued and the caller answers 451.
        """
        if self._file is None:
            raise SpoolError("message already committed or aborted")
        handle, self._file = self._file, None
        try:
            os.fsync(handle.fileno())
            self.size = os.fstat(handle.fileno()).st_size
        finally:
            handle.close()
        stored = dataclasses.replace(envelope, id=self.id, size=self.size)
        self._spool._commit(self.id, self._path, stored)
        return stored

    def abort(self) -> None:
        """Throw the partial message away (client gone, message refused)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)


class Spool:
    """The queue directory. Create with :meth:`open`, which also recovers after a crash."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock

    @classmethod
    def open(cls, root: Path, *, clock: Callable[[], float] = time.time) -> Spool:
        """Create the directories if needed and clean up after a crash.

        Removes everything in ``tmp/`` and every ``.eml`` without its envelope (both
        are messages that were never answered 250); moves unreadable envelopes and
        their messages to ``corrupt/``.

        Raises:
            OSError: ``root`` is not a directory (NotADirectoryError) or cannot be written.
        """
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"spool_dir {root}: not a directory")
        for name in ("tmp", "queue", "corrupt"):
            (root / name).mkdir(parents=True, exist_ok=True)
        spool = cls(root, clock=clock)
        for leftover in (root / "tmp").iterdir():
            leftover.unlink()
        queue = root / "queue"
        for path in queue.iterdir():
            if path.suffix == ".eml" and not path.with_suffix(".json").exists():
                path.unlink()
        _fsync_dir(queue)
        return spool

    # --- writing -------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh queue id: the time in hex, then 48 random bits (never from the peer)."""
        return f"{int(self._clock()):X}{secrets.token_hex(6).upper()}"

    def begin(self, preferred_id: str | None = None) -> SpoolWriter:
        """Start writing a new message, under ``preferred_id`` when that is a free queue id."""
        candidates = [preferred_id] if preferred_id and _is_queue_id(preferred_id) else []
        # Random ids: collisions need the same second and 48 equal random bits.
        candidates += [self.new_id() for _ in range(8)]
        for queue_id in candidates:
            if not (self.root / "queue" / f"{queue_id}.json").exists():
                try:
                    return SpoolWriter(self, queue_id)
                except FileExistsError:
                    continue
        raise SpoolError("could not find a free queue id")

    def enqueue(self, envelope: Envelope, message: bytes) -> Envelope:
        """Write a whole message at once (used for reports); see :meth:`SpoolWriter.commit`."""
        writer = self.begin()
        try:
            writer.write(message)
            return writer.commit(envelope)
        except BaseException:
            writer.abort()
            raise

    def _commit(self, queue_id: str, message_tmp: Path, envelope: Envelope) -> None:
        queue = self.root / "queue"
        envelope_tmp = self.root / "tmp" / f"{queue_id}.json"
        _write_synced(envelope_tmp, _envelope_to_json(envelope))
        os.replace(message_tmp, queue / f"{queue_id}.eml")
        _fsync_dir(queue)
        # The envelope goes last: its arrival is what commits the message.
        os.replace(envelope_tmp, queue / f"{queue_id}.json")
        _fsync_dir(queue)

    def update(self, envelope: Envelope) -> None:
        """Replace a message's envelope atomically (new recipient states, next attempt)."""
        queue = self.root / "queue"
        target = queue / f"{envelope.id}.json"
        if not target.exists():
            raise SpoolError(f"{envelope.id}: not in the queue")
        fresh = self.root / "tmp" / f"{envelope.id}.json.new"
        _write_synced(fresh, _envelope_to_json(envelope))
        os.replace(fresh, target)
        _fsync_dir(queue)

    def remove(self, queue_id: str) -> None:
        """Take a finished message out of the queue (envelope first, then the message)."""
        queue = self.root / "queue"
        (queue / f"{queue_id}.json").unlink(missing_ok=True)
        _fsync_dir(queue)
        (queue / f"{queue_id}.eml").unlink(missing_ok=True)

    # --- reading -------------------------------------------------------------------

    def scan(self) -> Iterator[Envelope]:
        """Every queued envelope, oldest id first; unreadable ones go to ``corrupt/``."""
        queue = self.root / "queue"
        for path in sorted(queue.glob("*.json")):
            if not _is_queue_id(path.stem):
                continue
            try:
                envelope = _envelope_from_json(path.read_bytes())
                if envelope.id != path.stem:
                    raise SpoolError("id does not match the file name")
            except SpoolError:
                self._quarantine(path.stem)
                continue
            yield envelope

    def _quarantine(self, queue_id: str) -> None:
        queue, corrupt = self.root / "queue", self.root / "corrupt"
        for suffix in (".eml", ".json"):
            source = queue / f"{queue_id}{suffix}"
            if source.exists():
                os.replace(source, corrupt / source.name)
        _fsync_dir(corrupt)
        _fsync_dir(queue)

    def load(self, queue_id: str) -> Envelope:
        """Read one envelope.

        Raises:
            SpoolError: not queued, or unreadable.
        """
        path = self.root / "queue" / f"{queue_id}.json"
        if not _is_queue_id(queue_id) or not path.exists():
            raise SpoolError(f"{queue_id}: not in the queue")
        return _envelope_from_json(path.read_bytes())

    def message_path(self, queue_id: str) -> Path:
        """Where a queued message's bytes are."""
        return self.root / "queue" / f"{queue_id}.eml"

    def read_message(self, queue_id: str) -> bytes:
        """A queued message's bytes."""
        return self.message_path(queue_id).read_bytes()
