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

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import trio

from .dsn import Action, MessageReport, RecipientReport, build_report, notify_wants
from .routes import QueueSettings
from .spool import Envelope, Recipient, Spool

__all__ = [
    "DeliveryAgent",
    "HopReply",
    "ReportSink",
    "TransmitResult",
    "Transmitter",
]

T = TypeVar("T")
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
        while True:
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
            except OSError:
                # The spool itself failed (disk full?): leave the message as it is on disk.
                log.exception("queue %s: could not update the spool", envelope.id)
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
            log.info("queue %s: %s: %s", envelope.id, hop, exc)
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
            recipient.address,
            remote or recipient.next_hop,
            reply.diagnostic,
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
                    envelope.sender,
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
        return build_report(report, message, date=_datetime(now), message_id=message_id)
