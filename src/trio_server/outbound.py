"""The delivery loop: sends queued mail to its next hop, retries, and reports.

Theory of operation. The :class:`~trio_server.spool.Spool` holds each message with a
per-recipient state. :class:`DeliveryAgent` runs one pass over a message whenever one
of its pending recipients is due:

1. Due recipients are grouped by next hop; each group is one SMTP transaction
   (:class:`Transmitter`). After each transaction the envelope is rewritten at once,
   so a recipient the next hop accepted is never sent again after a restart.
2. Each recipient ends the transaction in one of these ways (RFC 5321 §4.2.1,
   RFC 3461 §5):

   - 2xx: "delivered" (the next hop now owns it). If the hop did not advertise DSN
     and NOTIFY has SUCCESS, we report "relayed" ourselves (RFC 3461 §5.2.2).
   - 5xx: "failed", reported unless NOTIFY says otherwise.
   - 4xx, or no connection: tried again after ``retry_schedule[attempts-1]`` seconds
     (the last value repeats), never later than ``max_age`` after arrival; at
     ``max_age`` it fails (5.4.7, RFC 3463 §3.5). Once older than
     ``delay_notice_after`` a "delayed" report is made once, when NOTIFY has DELAY.

3. Reports owed are marked in the envelope (``report_due``) in the same rewrite that
   changes the state; after the pass, one report per action covers all the message's
   recipients owing that action (RFC 3464 §2), is handed to a :class:`ReportSink`,
   and only then is the mark cleared. A crash in between can duplicate a report,
   never lose one. A message whose sender is ``<>`` never gets one (RFC 3461 §6.2).
4. When no recipient is pending and no report is owed, the message leaves the spool.

Times in the spool are wall-clock seconds (they must survive a restart); the agent
takes a ``wall_clock`` and sleeps with Trio, so tests drive it with ``MockClock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import ipaddress
import logging
import math
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import trio

from sansio_smtp import (
    NEED_DATA,
    Bdat,
    Body,
    ClientConnection,
    ClientEvent,
    Command,
    Data,
    Ehlo,
    EhloResult,
    EndOfMessage,
    GreetingReceived,
    Helo,
    Mail,
    Mailbox,
    MailParams,
    MessageChunk,
    Notify,
    OriginalRecipient,
    ProtocolError,
    Quit,
    Rcpt,
    RcptParams,
    Reply,
    ReplyReceived,
    Ret,
    escape_text,
    parse_path,
)

from . import minger_client
from .config import Config
from .delivery import Envelope as LocalEnvelope
from .delivery import MaildirDelivery, TraceInfo, header_safe
from .delivery import Spool as ContentSpool
from .dsn import Action, MessageReport, RecipientReport, build_report, notify_wants
from .routes import ForwardRoute, QueueSettings, RouteTable, parse_host_port
from .routing import Refusal, Route, RoutedRecipient
from .spool import Envelope, Recipient, Spool, SpoolError
from .verify import MingerLookup, MingerVerifier

__all__ = [
    "DeliveryAgent",
    "Forwarding",
    "ForwardingRouter",
    "HopReply",
    "MessageSource",
    "ReportRouter",
    "ReportSink",
    "SmtpTransmitter",
    "TransmitResult",
    "Transmitter",
    "minger_lookup",
]

T = TypeVar("T")
_CRLF = re.compile(rb"\r?\n")
log = logging.getLogger("trio_server.outbound")


@dataclass(frozen=True, slots=True, kw_only=True)
class HopReply:
    """The next hop's final word about one recipient.

    Attributes:
        code: the SMTP reply code.
        status: the enhanced status code, when the hop gave one (RFC 3463).
        text: the reply text, one line.
    """

    code: int
    status: str | None = None
    text: str = ""

    @property
    def diagnostic(self) -> str:
        """The reply as a Diagnostic-Code value (RFC 3464 §2.3.6), after "smtp; "."""
        return " ".join(part for part in (str(self.code), self.status, self.text) if part)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransmitResult:
    """What one SMTP transaction with a next hop came to.

    Attributes:
        remote_mta: the hop's name for Remote-MTA (its EHLO greeting name or address).
        dsn: the hop advertised the DSN extension (RFC 3461 §4).
        replies: recipient address -> the reply that settled it (the RCPT refusal, or
            the reply to the message data). A recipient missing here is retried.
    """

    remote_mta: str
    dsn: bool
    replies: Mapping[str, HopReply]


Transmitter = Callable[[str, Envelope, Sequence[Recipient], bytes], Awaitable[TransmitResult]]
"""Send ``message`` for ``recipients`` to the hop "host:port".

Raises OSError (or trio.TooSlowError) when no transaction could be held at all;
the recipients are then retried.
"""

ReportSink = Callable[[str, bytes], Awaitable[None]]
"""Submit a report from ``<>`` to the given address (the original sender), durably."""


def _status_of(reply: HopReply) -> str:
    """The reply's enhanced status, or the RFC 3463 generic one for its class."""
    if reply.status is not None and reply.status[:1] == str(reply.code)[:1]:
        return reply.status
    return f"{reply.code // 100}.0.0"


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class DeliveryAgent:
    """Delivers everything in the spool; start :meth:`run` in a nursery.

    Args:
        spool: the queue.
        settings: retry schedule and ages.
        transmit: how a transaction with a next hop is held.
        report: where reports go (see :class:`ReportSink`).
        hostname: our name (Reporting-MTA).
        wall_clock: seconds since the epoch (``time.time`` in the server).
        attempt_timeout: the longest one transaction may take, in seconds
            (RFC 5321 §4.5.3.2 allows a hop 10 minutes for the final reply alone).
        threaded_io: run spool I/O in a worker thread (False in tests, so that
            ``MockClock`` jumps only while the agent really sleeps).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        settings: QueueSettings,
        transmit: Transmitter,
        report: ReportSink,
        hostname: str,
        wall_clock: Callable[[], float],
        attempt_timeout: float = 900.0,
        threaded_io: bool = True,
    ) -> None:
        self._spool = spool
        self._settings = settings
        self._transmit = transmit
        self._report = report
        self._hostname = hostname
        self._now = wall_clock
        self._attempt_timeout = attempt_timeout
        self._wakeup = trio.Event()
        self._threaded_io = threaded_io

    async def _io(self, function: Callable[..., T], *args: object) -> T:
        """Run blocking spool I/O without blocking the event loop."""
        if self._threaded_io:
            return await trio.to_thread.run_sync(function, *args)
        return function(*args)

    def wake(self) -> None:
        """Tell the loop a new message was queued (call after :meth:`Spool.enqueue`)."""
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver forever: rescan the spool, run due passes, sleep until the next is due."""
        task_status.started()
        while True:  # runs until the caller's cancel scope ends it
            self._wakeup = trio.Event()
            next_due = await self.run_due()
            delay = max(0.0, next_due - self._now()) if next_due is not None else math.inf
            with trio.move_on_after(delay):
                await self._wakeup.wait()

    async def run_due(self) -> float | None:
        """Run one pass over every message with a due recipient or an owed report.

        Returns:
            The wall-clock time the next recipient becomes due, or None when the queue
            is empty.
        """
        envelopes = await self._io(lambda: list(self._spool.scan()))
        next_due: float | None = None
        for envelope in envelopes:
            try:
                remaining = await self._process(envelope)
            except Exception:
                # The spool failed (disk full?) or a bug: the message stays as it is on
                # disk and is tried again later; one message never stops the loop.
                log.exception("queue %s: delivery pass failed", envelope.id)
                remaining = self._now() + self._settings.retry_schedule[0]
            if remaining is not None:
                next_due = remaining if next_due is None else min(next_due, remaining)
        return next_due

    async def _process(self, envelope: Envelope) -> float | None:
        now = self._now()
        due = [
            index
            for index, r in enumerate(envelope.recipients)
            if r.state == "pending" and r.next_attempt <= now
        ]
        message: bytes | None = None
        for hop in sorted({envelope.recipients[i].next_hop for i in due}):
            if message is None:
                message = await self._io(self._spool.read_message, envelope.id)
            indices = [i for i in due if envelope.recipients[i].next_hop == hop]
            group = [envelope.recipients[i] for i in indices]
            settled = await self._attempt(envelope, hop, group, message)
            recipients = list(envelope.recipients)
            for index, record in zip(indices, settled, strict=True):
                recipients[index] = record
            envelope = envelope.with_recipients(tuple(recipients))
            # Durable before anything else happens: no recipient is sent twice.
            await self._io(self._spool.update, envelope)
        envelope = await self._send_reports(envelope, message)
        if not envelope.pending and not any(r.report_due for r in envelope.recipients):
            await self._io(self._spool.remove, envelope.id)
            log.info("queue %s: done", envelope.id)
            return None
        return min((r.next_attempt for r in envelope.pending), default=None)

    async def _attempt(
        self, envelope: Envelope, hop: str, group: list[Recipient], message: bytes
    ) -> list[Recipient]:
        """Hold one transaction with ``hop``; return the group's new records, in order."""
        result: TransmitResult | None = None
        failure: HopReply
        try:
            with trio.fail_after(self._attempt_timeout):
                result = await self._transmit(hop, envelope, group, message)
        except (OSError, trio.TooSlowError) as exc:
            # RFC 3463 §3.5: 4.4.1 no answer from host; 4.4.2 bad connection.
            status = "4.4.2" if isinstance(exc, trio.TooSlowError) else "4.4.1"
            failure = HopReply(code=451, status=status, text=f"connection to {hop} failed")
            log.info("queue %s: %s: %s", envelope.id, escape_text(hop), escape_text(str(exc)))
        else:
            failure = HopReply(code=451, status="4.4.2", text="no reply for this recipient")
        now = self._now()
        settled = []
        for recipient in group:
            reply = failure if result is None else result.replies.get(recipient.address, failure)
            remote = None if result is None else result.remote_mta
            settled.append(self._settle(envelope, recipient, reply, remote, result, now))
        return settled

    def _settle(
        self,
        envelope: Envelope,
        recipient: Recipient,
        reply: HopReply,
        remote: str | None,
        result: TransmitResult | None,
        now: float,
    ) -> Recipient:
        """Turn one reply into the recipient's next record (state, retry time, report owed)."""
        attempted = dataclasses.replace(
            recipient,
            attempts=recipient.attempts + 1,
            status=_status_of(reply),
            diagnostic=reply.diagnostic,
            remote_mta=remote,
        )
        log.info(
            "queue %s: to=<%s> hop=%s reply=%s",
            envelope.id,
            escape_text(recipient.address, limit=320),
            escape_text(remote or recipient.next_hop),
            escape_text(reply.diagnostic, limit=512),
        )
        if 200 <= reply.code < 300:
            assert result is not None
            relayed = not result.dsn and notify_wants(recipient.notify, Action.RELAYED)
            return dataclasses.replace(
                attempted,
                state="relayed" if relayed else "delivered",
                report_due=Action.RELAYED.value if relayed else None,
            )
        if reply.code >= 500:
            return self._failed(attempted)
        age = now - envelope.arrival
        if age >= self._settings.max_age:
            return self._failed(
                dataclasses.replace(
                    attempted,
                    status="5.4.7",
                    diagnostic=f"{reply.diagnostic} (delivery time expired)",
                )
            )
        retry_at = min(
            now + self._settings.retry_delay(attempted.attempts),
            envelope.arrival + self._settings.max_age,
        )
        delayed = (
            not recipient.delay_notified
            and age >= self._settings.delay_notice_after
            and notify_wants(recipient.notify, Action.DELAYED)
        )
        return dataclasses.replace(
            attempted,
            next_attempt=retry_at,
            report_due=Action.DELAYED.value if delayed else recipient.report_due,
        )

    @staticmethod
    def _failed(recipient: Recipient) -> Recipient:
        wanted = notify_wants(recipient.notify, Action.FAILED)
        return dataclasses.replace(
            recipient, state="failed", report_due=Action.FAILED.value if wanted else None
        )

    async def _send_reports(self, envelope: Envelope, message: bytes | None) -> Envelope:
        """Send one report per action owed, then clear the marks durably."""
        owed = [r for r in envelope.recipients if r.report_due]
        if not owed:
            return envelope
        if envelope.sender and message is None:
            message = await self._io(self._spool.read_message, envelope.id)
        for action in Action:
            covered = [r for r in owed if r.report_due == action.value]
            if not covered or not envelope.sender:
                continue  # never a report about mail from <> (RFC 3461 §6.2)
            assert message is not None
            report = self._build(envelope, action, covered, message)
            if report is not None:
                await self._report(envelope.sender, report)
                log.info(
                    "queue %s: %s report to <%s> for %d recipient(s)",
                    envelope.id,
                    action.value,
                    escape_text(envelope.sender, limit=320),
                    len(covered),
                )
        cleared = tuple(
            dataclasses.replace(
                r,
                report_due=None,
                delay_notified=r.delay_notified or r.report_due == Action.DELAYED.value,
            )
            if r.report_due
            else r
            for r in envelope.recipients
        )
        envelope = envelope.with_recipients(cleared)
        await self._io(self._spool.update, envelope)
        return envelope

    def _build(
        self, envelope: Envelope, action: Action, covered: list[Recipient], message: bytes
    ) -> bytes | None:
        now = self._now()
        until = _datetime(envelope.arrival + self._settings.max_age)
        recipients = tuple(
            RecipientReport(
                final_recipient=r.address,
                action=action,
                status=r.status
                or ("2.0.0" if action in (Action.RELAYED, Action.DELIVERED) else "4.0.0"),
                original_recipient=r.orcpt,
                remote_mta=r.remote_mta,
                diagnostic_code=r.diagnostic,
                last_attempt_date=_datetime(now) if r.attempts else None,
                will_retry_until=until if action is Action.DELAYED else None,
            )
            for r in covered
        )
        report = MessageReport(
            reporting_mta=self._hostname,
            sender=envelope.sender,
            arrival_date=_datetime(envelope.arrival),
            envid=envelope.envid,
            ret=envelope.ret,
            received_from_mta=envelope.received_from,
            recipients=recipients,
            smtputf8=envelope.smtputf8,
        )
        message_id = f"<{self._spool.new_id()}.dsn@{self._hostname}>"
        if envelope.body != "BINARYMIME":
            # The spool may hold LF line ends; a report quotes the message in CRLF.
            message = _CRLF.sub(b"\r\n", message)
        return build_report(report, message, date=_datetime(now), message_id=message_id)


# --- the SMTP client side of a delivery attempt -------------------------------------

_CHUNK = 64 * 1024


class _Session:
    """One SMTP client session over a Trio stream, driving a ClientConnection."""

    def __init__(self, stream: trio.abc.Stream, *, read_size: int = 65536) -> None:
        self.stream = stream
        self.conn = ClientConnection()
        self._read_size = read_size

    async def send(self, *commands: Command) -> None:
        """Encode commands and write them in one go (pipelined when several)."""
        data = b"".join(self.conn.send(command) for command in commands)
        if data:
            await self.stream.send_all(data)

    async def event(self) -> ClientEvent:
        """The next reply event; OSError when the server closed the connection."""
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                self.conn.receive_data(bytes(await self.stream.receive_some(self._read_size)))
                continue
            if isinstance(event, ClientEvent):
                return event
            raise OSError(f"next hop closed the connection ({event})")

    async def reply(self) -> Reply:
        """The next reply."""
        event = await self.event()
        assert isinstance(event, GreetingReceived | EhloResult | ReplyReceived)
        return event.reply


def _hop_reply(reply: Reply) -> HopReply:
    return HopReply(code=reply.code, status=reply.status, text=" ".join(reply.lines).strip())


def _parse_address(address: str, *, sender: bool) -> Mailbox | None:
    mailbox, _ = parse_path(f"<{address}>", allow_null=sender, allow_postmaster=True, utf8=True)
    return mailbox


class SmtpTransmitter:
    """Holds one SMTP transaction with a next hop (a :data:`Transmitter`).

    DSN parameters pass through when the hop offers DSN (RFC 3461 §4), with ORCPT
    added when the client gave none (RFC 3461 §4.2: "rfc822;" and the address as
    received). PIPELINING is used when offered (RFC 2920), BDAT for BINARYMIME
    (RFC 3030). A message that needs SMTPUTF8, 8BITMIME or BINARYMIME fails for a hop
    that lacks it (RFC 6531 §3.2, RFC 6152 §3), since we do not convert content.

    Args:
        hostname: our name for EHLO.
        connect: opens the TCP stream (``trio.open_tcp_stream``; tests may wrap it).
    """

    def __init__(
        self,
        *,
        hostname: str,
        connect: Callable[[str, int], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        self._hostname = hostname
        self._connect = connect or _open_tcp

    async def __call__(
        self, hop: str, envelope: Envelope, recipients: Sequence[Recipient], message: bytes
    ) -> TransmitResult:
        """Send ``message`` to ``hop`` for ``recipients``; see :data:`Transmitter`."""
        target = parse_host_port(hop, key="next_hop")
        stream = await self._connect(target.host, target.port)
        try:
            session = _Session(stream)
            try:
                return await self._transaction(session, target.host, envelope, recipients, message)
            except ProtocolError as error:
                raise OSError(f"protocol error with {hop}: {error}") from None
        finally:
            await trio.aclose_forcefully(stream)

    async def _transaction(
        self,
        session: _Session,
        remote: str,
        envelope: Envelope,
        recipients: Sequence[Recipient],
        message: bytes,
    ) -> TransmitResult:
        def everyone(reply: HopReply, dsn: bool = False) -> TransmitResult:
            return TransmitResult(
                remote_mta=remote, dsn=dsn, replies={r.address: reply for r in recipients}
            )

        greeting = await session.reply()
        if greeting.code != 220:
            # A hop refusing sessions is a hop that is down for now (RFC 5321 §3.1).
            return everyone(
                HopReply(
                    code=451, status="4.4.2", text=f"greeting: {_hop_reply(greeting).diagnostic}"
                )
            )
        conn = session.conn
        await session.send(Ehlo(domain=self._hostname))
        ehlo = await session.reply()
        if not 200 <= ehlo.code < 300:
            await session.send(Helo(domain=self._hostname))
            helo = await session.reply()
            if not 200 <= helo.code < 300:
                return everyone(_hop_reply(helo))
        dsn = conn.offers("DSN")
        body = Body(envelope.body) if envelope.body else None
        missing = _missing_extension(conn, envelope.smtputf8, body)
        if missing is not None:
            # RFC 3463: 5.6.7 for addresses needing SMTPUTF8, 5.6.3 for content.
            status = "5.6.7" if missing == "SMTPUTF8" else "5.6.3"
            await self._quit(session)
            return everyone(
                HopReply(code=554, status=status, text=f"next hop does not offer {missing}"), dsn
            )
        mail = Mail(
            sender=_parse_address(envelope.sender, sender=True),
            params=MailParams(
                size=len(message) if conn.offers("SIZE") else None,
                body=body if conn.offers("8BITMIME") or body is Body.BINARY_MIME else None,
                smtputf8=envelope.smtputf8,
                ret=Ret(envelope.ret) if dsn and envelope.ret else None,
                envid=envelope.envid if dsn else None,
            ),
        )
        rcpts = [Rcpt(recipient=_rcpt_mailbox(r), params=_rcpt_params(r, dsn)) for r in recipients]
        use_bdat = body is Body.BINARY_MIME
        if conn.pipelining:
            await session.send(mail, *rcpts, *(() if use_bdat else (Data(),)))
            replies = [await session.reply() for _ in range(1 + len(rcpts))]
        else:
            await session.send(mail)
            replies = [await session.reply()]
            if 200 <= replies[0].code < 300:
                for rcpt in rcpts:
                    await session.send(rcpt)
                    replies.append(await session.reply())
        mail_reply, rcpt_replies = replies[0], replies[1:]
        if not 200 <= mail_reply.code < 300:
            if conn.pipelining and not use_bdat:
                await session.reply()  # DATA's reply, a 503 after the failed MAIL
            await self._quit(session)
            return everyone(_hop_reply(mail_reply), dsn)
        results = {
            r.address: _hop_reply(reply)
            for r, reply in zip(recipients, rcpt_replies, strict=True)
            if not 200 <= reply.code < 300
        }
        accepted = [r for r in recipients if r.address not in results]
        if use_bdat:
            final = await self._bdat(session, message) if accepted else None
        else:
            if not conn.pipelining:
                if not accepted:
                    await self._quit(session)
                    return TransmitResult(remote_mta=remote, dsn=dsn, replies=results)
                await session.send(Data())
            final = await self._data(session, message, send=bool(accepted))
        if final is not None:
            results.update({r.address: _hop_reply(final) for r in accepted})
        await self._quit(session)
        return TransmitResult(remote_mta=remote, dsn=dsn, replies=results)

    @staticmethod
    async def _data(session: _Session, message: bytes, *, send: bool) -> Reply | None:
        start = await session.reply()
        if start.code != 354:
            return None if not send else start
        # RFC 2920 §3.1: if every RCPT failed yet DATA got 354, end the (empty) content.
        chunks = [message[i : i + _CHUNK] for i in range(0, len(message), _CHUNK)] if send else []
        for chunk in chunks:
            await session.send(MessageChunk(data=chunk))
        await session.send(EndOfMessage())
        final = await session.reply()
        return final if send else None

    @staticmethod
    async def _bdat(session: _Session, message: bytes) -> Reply:
        chunks = [message[i : i + _CHUNK] for i in range(0, len(message), _CHUNK)] or [b""]
        for index, chunk in enumerate(chunks):
            await session.send(Bdat(data=chunk, last=index == len(chunks) - 1))
            reply = await session.reply()
            if not 200 <= reply.code < 300:
                return reply
        return reply

    @staticmethod
    async def _quit(session: _Session) -> None:
        # The results are known; a hop that drops the connection at QUIT changes nothing.
        with contextlib.suppress(OSError, ProtocolError, trio.BrokenResourceError):
            await session.send(Quit())
            await session.reply()


def _missing_extension(conn: ClientConnection, smtputf8: bool, body: Body | None) -> str | None:
    """The extension this message needs and the hop lacks, if any (we never convert)."""
    if smtputf8 and not conn.offers("SMTPUTF8"):
        return "SMTPUTF8"
    if body is Body.BINARY_MIME and not (conn.offers("BINARYMIME") and conn.offers("CHUNKING")):
        return "BINARYMIME"
    if body is Body.EIGHT_BIT_MIME and not conn.offers("8BITMIME"):
        return "8BITMIME"
    return None


async def _open_tcp(host: str, port: int) -> trio.abc.Stream:
    return await trio.open_tcp_stream(host, port)


def _rcpt_mailbox(recipient: Recipient) -> Mailbox:
    mailbox = _parse_address(recipient.address, sender=False)
    assert mailbox is not None
    return mailbox


def _rcpt_params(recipient: Recipient, dsn: bool) -> RcptParams:
    """NOTIFY and ORCPT for the next hop; ORCPT added when absent (RFC 3461 §4.2)."""
    if not dsn:
        return RcptParams()
    notify = None if recipient.notify is None else frozenset(Notify(n) for n in recipient.notify)
    addr_type, address = recipient.orcpt or (
        ("rfc822", recipient.address)
        if recipient.address.isascii()
        else ("utf-8", recipient.address)
    )
    return RcptParams(notify=notify, orcpt=OriginalRecipient(addr_type=addr_type, address=address))


# --- the server's side: routing, RCPT verification, queueing, reports -----------------


def _received_line(
    trace: TraceInfo, queue_id: str, recipients: Sequence[str], newline: str = "\r\n"
) -> bytes:
    """Our trace header for forwarded mail (RFC 5321 §4.4), the same shape as local copies."""
    helo = header_safe(trace.helo) if trace.helo else "unknown"
    try:
        literal = ipaddress.ip_address(trace.peer_ip)
        shown = f"[IPv6:{literal}]" if literal.version == 6 else f"[{literal}]"
    except ValueError:
        shown = f"[{header_safe(trace.peer_ip)}]"
    lines = [f"Received: from {helo} ({shown})"]
    if trace.tls:
        lines.append(f"\t(using {header_safe(trace.tls)})")
    stamp = email.utils.format_datetime(datetime.now(UTC))
    by = f"\tby {trace.hostname} (sansio-smtpd) with {trace.protocol} id {queue_id}"
    # "for" only with a single recipient, so a copy never lists the others.
    if len(recipients) == 1:
        lines += [by, f"\tfor <{header_safe(recipients[0])}>; {stamp}"]
    else:
        lines += [by + ";", f"\t{stamp}"]
    return (newline.join(lines) + newline).encode("utf-8")


class MessageSource(Protocol):
    """Received content that can copy itself to a file descriptor (the connection's spool)."""

    def copy_to(self, fd: int) -> None:
        """Write the whole content to ``fd`` (blocking)."""
        ...


def minger_lookup(
    route: ForwardRoute, *, retries: int = minger_client.DEFAULT_RETRIES
) -> MingerLookup:
    """The Minger lookup for a route: its server, secret and timeout; silence is None."""
    assert route.minger_server is not None
    server = (route.minger_server.host, route.minger_server.port)
    timeout = route.minger_timeout

    async def lookup(address: str) -> int | None:
        try:
            status = await minger_client.verify(
                address, server, route.minger_secret, timeout=timeout, retries=retries
            )
        except minger_client.MingerClientError:
            return None
        return int(status)

    return lookup


def _plain_address(mailbox: Mailbox) -> str:
    """local@domain with the decoded local part, for route patterns and Minger."""
    return f"{mailbox.local_part}@{mailbox.domain}" if mailbox.domain else mailbox.local_part


class ForwardingRouter:
    """The :class:`~trio_server.routing.Router` for ``[[forward]]`` and ``[relay]``.

    Args:
        routes: the route table from the config.
        spool: the durable queue.
        hostname: our name, for trace headers and reports.
        lookup_factory: builds the Minger lookup for a ``verify = "minger"`` route
            (tests pass fakes); default :func:`minger_lookup`.
        clock: monotonic seconds for the verification cache (``trio.current_time``).
        wall_clock: seconds since the epoch, for arrival times.
    """

    def __init__(
        self,
        routes: RouteTable,
        spool: Spool,
        *,
        hostname: str,
        lookup_factory: Callable[[ForwardRoute], MingerLookup] | None = None,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.spool = spool
        self.hostname = hostname
        self.agent: DeliveryAgent | None = None
        self.reports: ReportSink | None = None
        self._wall_clock = wall_clock
        factory = lookup_factory or minger_lookup
        self._verifiers = {
            id(route): MingerVerifier(
                factory(route), cache_seconds=route.minger_cache_seconds, clock=clock
            )
            for route in routes.forwards
            if route.verify == "minger"
        }

    def route(self, recipient: Mailbox, *, trusted: bool) -> Route | None:
        """The next hop for a non-local recipient, or None (550 5.7.1)."""
        hop = self.routes.next_hop(_plain_address(recipient), may_relay=trusted)
        return None if hop is None else Route(next_hop=str(hop))

    async def verify(self, recipient: Mailbox) -> Refusal | None:
        """Ask Minger about a recipient on a ``verify = "minger"`` route.

        Returns:
            None to accept, or the refusal to send (550 5.1.1, 550 5.2.1, 451 4.4.3).
        """
        address = _plain_address(recipient)
        route = self.routes.forward_for(address)
        verifier = None if route is None else self._verifiers.get(id(route))
        if verifier is None:
            return None
        verdict = await verifier.verify(address)
        log.info(
            "minger verify to=<%s> status=%s%s",
            escape_text(address, limit=320),
            verdict.minger_status,
            " (cached)" if verdict.cached else "",
        )
        if verdict.accepted:
            return None
        return Refusal(
            code=verdict.code,
            status=verdict.status,
            text=verdict.text,
            unknown_local=verdict.minger_status in (3, 4),
        )

    async def enqueue(
        self,
        spool: MessageSource,
        sender: str,
        recipients: Sequence[RoutedRecipient],
        trace: TraceInfo,
        *,
        queue_id: str | None = None,
        mail_params: MailParams | None = None,
        rcpt_params: Sequence[RcptParams | None] | None = None,
    ) -> None:
        """Queue the message for its routed recipients, durably, before 250.

        Args:
            spool: the received content (the connection's in-flight spool).
            sender: the reverse-path, "" for ``<>``.
            recipients: the routed recipients, in RCPT order.
            trace: facts for our ``Received:`` header.
            queue_id: the transaction's queue id, reused when free (one id in the logs).
            mail_params: MAIL FROM parameters (ENVID, RET, BODY, SMTPUTF8).
            rcpt_params: each recipient's RCPT parameters (NOTIFY, ORCPT), same order;
                by default each routed recipient's ``params`` attribute, if it has one.

        Raises:
            OSError: the queue could not be written; the client gets 451.
        """
        # Each recipient's RCPT parameters: given here, or carried by the routed
        # recipient itself when the connection records them there.
        params: list[RcptParams | None] = (
            list(rcpt_params)
            if rcpt_params is not None
            else [getattr(routed, "params", None) for routed in recipients]
        )
        now = self._wall_clock()
        queued = tuple(
            Recipient(
                address=routed.address,
                next_hop=routed.route.next_hop,
                notify=None
                if p is None or p.notify is None
                else tuple(sorted(str(n) for n in p.notify)),
                orcpt=None
                if p is None or p.orcpt is None
                else (p.orcpt.addr_type, p.orcpt.address),
                next_attempt=now,
            )
            for routed, p in zip(recipients, params, strict=True)
        )
        envelope = Envelope(
            id="",
            sender=sender,
            arrival=now,
            recipients=queued,
            envid=None if mail_params is None else mail_params.envid,
            ret=None if mail_params is None or mail_params.ret is None else str(mail_params.ret),
            body=None if mail_params is None or mail_params.body is None else str(mail_params.body),
            smtputf8=False if mail_params is None else mail_params.smtputf8,
            received_from=trace.helo,
        )

        def write() -> Envelope:
            writer = self.spool.begin(queue_id)
            try:
                # Our line ends like the stored content (the connection spool may keep
                # LF, as Maildir does; the client role turns it into CRLF on the wire).
                newline = getattr(spool, "newline", b"\r\n").decode("ascii")
                header = _received_line(trace, writer.id, [r.address for r in queued], newline)
                writer.write(header)
                spool.copy_to(writer.fileno())
                return writer.commit(envelope)
            except BaseException:
                writer.abort()
                raise

        stored = await trio.to_thread.run_sync(write)
        log.info(
            "queue %s: queued from=<%s> nrcpt=%d size=%d",
            stored.id,
            escape_text(sender, limit=320),
            len(queued),
            stored.size,
        )
        if self.agent is not None:
            self.agent.wake()

    async def delivered_locally(
        self,
        spool: MessageSource,
        sender: str,
        recipients: Sequence[tuple[str, RcptParams | None]],
        trace: TraceInfo,
        *,
        mail_params: MailParams | None = None,
    ) -> None:
        """Report "delivered" for local recipients whose NOTIFY has SUCCESS (RFC 3461 §5.2.2).

        Call after the Maildir copies are durable. One report covers every such
        recipient of the message; nothing is sent for ``<>`` or without a report sink.
        Failures are logged, never raised: the message itself is already delivered.

        Args:
            spool: the received content (its header section is quoted).
            sender: the reverse-path, "" for ``<>``.
            recipients: (address as given in RCPT TO, its RCPT parameters).
            trace: the session facts (Received-From-MTA).
            mail_params: MAIL FROM parameters (ENVID, RET, SMTPUTF8).
        """
        wanted = [
            (address, params)
            for address, params in recipients
            if params is not None
            and params.notify is not None
            and notify_wants({str(n) for n in params.notify}, Action.DELIVERED)
        ]
        if not sender or not wanted or self.reports is None:
            return
        now = self._wall_clock()
        report = MessageReport(
            reporting_mta=self.hostname,
            sender=sender,
            arrival_date=_datetime(now),
            envid=None if mail_params is None else mail_params.envid,
            ret="HDRS",
            received_from_mta=trace.helo,
            smtputf8=False if mail_params is None else mail_params.smtputf8,
            recipients=tuple(
                RecipientReport(
                    final_recipient=address,
                    action=Action.DELIVERED,
                    status="2.0.0",
                    original_recipient=None
                    if params is None or params.orcpt is None
                    else (params.orcpt.addr_type, params.orcpt.address),
                )
                for address, params in wanted
            ),
        )
        try:
            headers = await trio.to_thread.run_sync(_header_section, spool)
            data = build_report(
                report,
                headers,
                date=_datetime(now),
                message_id=f"<{self.spool.new_id()}.dsn@{self.hostname}>",
            )
            if data is not None:
                await self.reports(sender, data)
        except (OSError, SpoolError, ValueError):
            log.exception("delivered report to <%s> failed", escape_text(sender, limit=320))


def _header_section(spool: MessageSource, limit: int = 256 * 1024) -> bytes:
    """The header section of received content, CRLF line ends (blocking)."""
    with tempfile.TemporaryFile() as scratch:
        spool.copy_to(scratch.fileno())
        scratch.seek(0)
        start = scratch.read(limit)
    return _CRLF.sub(b"\r\n", start) if b"\r\n\r\n" not in start else start


class ReportRouter:
    """Sends a report where its recipient (the original sender) routes.

    A sender at one of our domains gets it in their Maildir; any other address goes
    through the queue to its forward route or the smarthost (a report is our own mail,
    so the smarthost may carry it). With nowhere to go it is logged and dropped.

    Args:
        routes: the route table.
        spool: the durable queue (reports are queued from ``<>``).
        local: says whether an address is ours and which mailbox gets it:
            ``(local_part, domain) -> (is_local_domain, mailbox or None)``.
        delivery: local Maildir delivery.
        content_dir: where the connection spool keeps temporary content.
        hostname: our name.
        wall_clock: seconds since the epoch.
    """

    def __init__(
        self,
        routes: RouteTable,
        spool: Spool,
        *,
        local: Callable[[str, str], tuple[bool, str | None]],
        delivery: MaildirDelivery,
        content_dir: Path,
        hostname: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._routes = routes
        self._spool = spool
        self._local = local
        self._delivery = delivery
        self._content_dir = content_dir
        self._hostname = hostname
        self._wall_clock = wall_clock
        self.agent: DeliveryAgent | None = None

    async def __call__(self, address: str, report: bytes) -> None:
        """Deliver or queue one report to ``address``, durably."""
        local_part, _, domain = address.rpartition("@")
        is_local, mailbox = self._local(local_part, domain)
        if is_local:
            if mailbox is None:
                log.warning(
                    "report to <%s> dropped: no such local mailbox", escape_text(address, limit=320)
                )
                return
            await self._deliver_locally(mailbox, address, report)
            return
        hop = self._routes.next_hop(address, may_relay=True)
        if hop is None:
            log.warning("report to <%s> dropped: no route", escape_text(address, limit=320))
            return
        envelope = Envelope(
            id="",
            sender="",
            arrival=self._wall_clock(),
            recipients=(
                Recipient(address=address, next_hop=str(hop), next_attempt=self._wall_clock()),
            ),
        )
        stored = await trio.to_thread.run_sync(self._spool.enqueue, envelope, report)
        log.info("queue %s: report queued to <%s>", stored.id, escape_text(address, limit=320))
        if self.agent is not None:
            self.agent.wake()

    async def _deliver_locally(self, mailbox: str, address: str, report: bytes) -> None:
        content = ContentSpool(self._content_dir)
        try:
            await content.write(report)
            envelope = LocalEnvelope(queue_id=self._spool.new_id(), sender="")
            envelope.add(mailbox, address)
            trace = TraceInfo(
                hostname=self._hostname, peer_ip="127.0.0.1", helo=self._hostname, protocol="local"
            )
            await self._delivery.deliver(content, envelope, trace, add_date=False)
        finally:
            await content.aclose()
        log.info("report delivered to <%s> mailbox=%s", escape_text(address, limit=320), mailbox)


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarding:
    """Everything forwarding needs, built from the config: plug ``router`` into the
    server and start ``agent.run`` in the server's nursery.

    Attributes:
        spool: the durable queue under ``[server] spool_dir``.
        router: the :class:`ForwardingRouter` for :class:`~trio_server.server.SMTPServer`.
        reports: where delivery status notifications go.
        agent: the delivery loop.
    """

    spool: Spool
    router: ForwardingRouter
    reports: ReportRouter
    agent: DeliveryAgent

    @classmethod
    def from_config(
        cls,
        config: Config,
        delivery: MaildirDelivery | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Forwarding:
        """Open the spool (recovering after a crash) and wire the parts (blocking).

        Args:
            config: the loaded configuration (routes, queue, spool_dir, local domains).
            delivery: Maildir delivery for reports to local senders; by default one
                like the server's own.
            wall_clock: seconds since the epoch (tests move it forward).

        Raises:
            OSError, SpoolError: the spool directory cannot be used.
        """
        hostname = config.server.hostname
        if delivery is None:
            smtp = config.smtp
            delivery = MaildirDelivery(
                config.local.maildir_root,
                original_recipients_header=(
                    smtp.original_recipients_header if smtp.add_original_recipients_header else None
                ),
            )
        spool = Spool.open(config.server.spool_dir)
        router = ForwardingRouter(config.routes, spool, hostname=hostname, wall_clock=wall_clock)
        local = config.local
        reports = ReportRouter(
            config.routes,
            spool,
            local=lambda local_part, domain: (
                local.is_local_domain(domain),
                local.mailbox_for(local_part),
            ),
            delivery=delivery,
            content_dir=config.server.spool_dir,
            hostname=hostname,
            wall_clock=wall_clock,
        )
        agent = DeliveryAgent(
            spool,
            settings=config.queue,
            transmit=SmtpTransmitter(hostname=hostname),
            report=reports,
            hostname=hostname,
            wall_clock=wall_clock,
        )
        router.agent = agent
        router.reports = reports
        reports.agent = agent
        return cls(spool=spool, router=router, reports=reports, agent=agent)
