"""One SMTP session over any ``trio.abc.Stream``: the engine's events turned into I/O.

The engine (``sansio_smtp.ServerConnection``) decides everything about the protocol;
this module does the I/O and the policy the engine leaves to the application:

- **Flush before read.** Replies are sent (``data_to_send()``) every time the engine
  says NEED_DATA, before blocking on the peer, so a pipelining client (RFC 2920) that
  waits for replies never deadlocks against us.
- **Deadlines** (Postfix's per-request deadlines). Waiting for a command:
  ``command_timeout``. Reading DATA/BDAT content: the deadline starts at
  ``command_timeout`` and each content byte received pushes it ``1/min_data_rate`` seconds
  further (Postfix ``smtpd_min_data_rate``), never more than ``data_timeout`` ahead of
  now. Expiry answers 421 4.4.2 and closes.
- **STARTTLS** (RFC 3207 §4.2): after the engine's 220 is flushed, the *raw* stream is
  wrapped in ``trio.SSLStream``. Plaintext the client pipelined behind STARTTLS is
  therefore fed to the TLS handshake, never to the engine (CVE-2011-0411); the engine
  itself refuses bytes already buffered. ``tls_established()`` makes it forget EHLO.
- **Recipients** go through :func:`trio_server.routing.decide`, the one place that
  says local / routed / refused.
- **Delivery** (RFC 5321 §6.1): 250 only after every copy is fsynced into ``new/``.
- **Shutdown**: an idle session gets 421 4.3.2 at once; a session inside a
  transaction finishes it first (the server's deadline cancels stragglers).
- **Errors**: anything unexpected is logged with the connection id, answered 421
  4.3.0 when still possible, and closes only this connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

import trio

from sansio_smtp import (
    NEED_DATA,
    PAUSED,
    Accept,
    AuthCredentials,
    Body,
    CommandRejected,
    ConnectionClosed,
    Event,
    Expand,
    Greeting,
    Hello,
    MailFrom,
    MailParams,
    MessageData,
    MessageEnd,
    MessageRejected,
    RcptParams,
    RcptTo,
    Reject,
    Reply,
    Reset,
    ServerConfig,
    ServerConnection,
    Shutdown,
    StartTLS,
    State,
    Verify,
)

from .config import Config, Network
from .delivery import Envelope, MaildirDelivery, Spool, TraceInfo, new_queue_id
from .log import ConnectionLog, RejectedRecipientsLog
from .passwords import verify_password
from .routing import LocalDelivery, Refusal, Route, RoutedRecipient, Router, decide

__all__ = ["RECEIVE_SIZE", "ConnectionContext", "Peer", "SMTPConnection"]

RECEIVE_SIZE = 64 * 1024
# How long a final reply (421 after a timeout, say) may take to go out.
_FINAL_FLUSH_SECONDS = 5.0
_DATA_STATES = frozenset({State.DATA, State.BDAT})


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """The remote end of a connection."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionContext:
    """Everything a session needs from the server, shared by all sessions."""

    config: Config
    engine_config: ServerConfig
    ssl_context: ssl.SSLContext | None
    delivery: MaildirDelivery
    router: Router
    rejected_log: RejectedRecipientsLog | None = None
    # Password checks run at most this many at a time (each scrypt takes 32 MiB).
    auth_limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(4))


class _Timeout(Exception):
    """The peer was too slow; answer 421 4.4.2."""


class _ShutdownNow(Exception):
    """The server is stopping and this session is idle; answer 421 4.3.2."""


class _Gone(Exception):
    """The peer cannot be written to any more; just close."""


@dataclass(slots=True)
class _Transaction:
    envelope: Envelope
    params: MailParams
    binary: bool  # BODY=BINARYMIME: store the bytes exactly
    routed: list[RoutedRecipient] = field(default_factory=list)
    local: list[tuple[str, RcptParams]] = field(default_factory=list)  # for DSNs
    spool: Spool | None = None


class SMTPConnection:
    """One session: owns the stream, the engine and the current transaction."""

    def __init__(
        self, context: ConnectionContext, stream: trio.abc.Stream, peer: Peer, connection_id: int
    ) -> None:
        """Wrap ``stream`` (a socket, an SSLStream, or a memory stream in tests)."""
        self.context = context
        self.stream = stream
        self.peer = peer
        self.connection_id = connection_id
        self.log = ConnectionLog(connection_id, str(peer))
        self.engine = ServerConnection(context.engine_config)
        self.transaction: _Transaction | None = None
        self.tls_description: str | None = None
        self._settings = context.config.server
        self._in_local_network = _in_networks(peer.ip, self._settings.local_networks)
        self._shutdown_requested = False
        # One cancel scope for the whole loop; its deadline covers each send and read
        # and is infinite in between (cheaper than a new scope per command).
        self._scope: trio.CancelScope | None = None
        self._waiting: Literal["send", "receive"] | None = None
        self._data_deadline: float | None = None
        self._early_credit = 0.0  # content seen before the data-phase deadline was set
        self._auth_failures = 0

    # ------------------------------------------------------------------ control

    @property
    def trusted(self) -> bool:
        """The client is in ``local_networks`` or has authenticated."""
        return self._in_local_network or self.engine.authenticated_as is not None

    def request_shutdown(self) -> None:
        """Ask the session to end: now if idle, after the current transaction otherwise."""
        self._shutdown_requested = True
        if self.transaction is None and self._waiting == "receive" and self._scope is not None:
            self._scope.cancel()

    async def run(self, *, refuse: Literal["busy", "stopping"] | None = None) -> None:
        """Serve the session until it ends; never raises except for cancellation.

        Args:
            refuse: instead of the greeting, answer 421 and close: "busy" (4.7.0, too
                many connections) or "stopping" (4.3.2, the server is shutting down).
        """
        self.log.event("connect")
        try:
            if refuse is not None:
                reply = self._closing_reply(*(_TOO_MANY if refuse == "busy" else _SHUTDOWN))
                self.engine.send(Shutdown(reply=reply))
                self.log.event("reject", reply=_show(reply))
            else:
                self.engine.send(Greeting())
            await self._serve()
        except _Timeout:
            await self._final(self._closing_reply(*_TIMEOUT), "timeout")
        except _ShutdownNow:
            await self._final(self._closing_reply(*_SHUTDOWN), "shutdown")
        except (_Gone, trio.BrokenResourceError, trio.ClosedResourceError):
            self.log.event("lost")
        except trio.Cancelled:
            if self._shutdown_requested:
                # The server's shutdown deadline passed with this session still busy.
                with trio.CancelScope(shield=True):
                    await self._final(self._closing_reply(*_SHUTDOWN), "shutdown", seconds=1.0)
            raise
        except Exception as error:  # one bad session must not take the server down
            self.log.error(f"{type(error).__name__}: {error}")
            await self._emergency_reply()
        finally:
            with trio.CancelScope(shield=True):
                await self._end_transaction()
                await trio.aclose_forcefully(self.stream)
            self.log.event("disconnect")

    # --------------------------------------------------------------------- loop

    async def _serve(self) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            await self._loop()
        if scope.cancelled_caught:
            raise self._expired()

    def _expired(self) -> Exception:
        """What it means that the deadline passed (or shutdown came) while waiting."""
        if self._waiting == "send":
            return _Gone()
        if self._shutdown_requested and self.transaction is None:
            return _ShutdownNow()
        return _Timeout()

    def _settle(self, scope: trio.CancelScope) -> None:
        """After a send or read: no deadline until the next one.

        A deadline that passed just as the operation finished has cancelled the scope
        for good (Trio cancel scopes do not un-cancel), so it counts as expired.
        """
        scope.deadline = math.inf
        if scope.cancel_called:
            raise self._expired()
        self._waiting = None

    async def _loop(self) -> None:
        while True:
            event = self.engine.next_event()
            if event is NEED_DATA:
                await self._flush()
                if self._shutdown_requested and self.transaction is None:
                    raise _ShutdownNow
                self.engine.receive_data(await self._receive())
            elif event is PAUSED:
                # Every event is answered as soon as it is handled, so the engine can
                # only pause here if this layer forgot a decision: a bug, never a hang.
                raise RuntimeError("engine paused waiting for a decision")
            elif isinstance(event, ConnectionClosed):
                await self._flush()
                self.log.event("closed", reason=event.reason)
                return
            else:
                await self._handle(event)

    async def _handle(self, event: Event) -> None:
        if isinstance(event, MessageData):
            await self._message_data(event.data)
        elif isinstance(event, RcptTo):
            await self._rcpt(event)
        elif isinstance(event, MailFrom):
            self._mail(event)
        elif isinstance(event, MessageEnd):
            await self._message_end()
        elif isinstance(event, Hello):
            self.engine.send(Accept())
            self.log.event("helo", command=event.command, name=event.domain)
        elif isinstance(event, CommandRejected):
            if event.argument:
                self.log.event(
                    "reject", command=event.command, arg=event.argument, reply=_show(event.reply)
                )
            else:
                self.log.event("reject", command=event.command, reply=_show(event.reply))
        elif isinstance(event, MessageRejected):
            queue_id = self.transaction.envelope.queue_id if self.transaction else ""
            self.log.event("reject", command="DATA", queue_id=queue_id, reply=_show(event.reply))
            await self._end_transaction()
        elif isinstance(event, Reset):
            await self._end_transaction()
        elif isinstance(event, AuthCredentials):
            await self._auth(event)
        elif isinstance(event, StartTLS):
            await self._start_tls()
        elif isinstance(event, Verify | Expand):
            self.engine.send(Reject(code=502, status="5.5.1", text="Command not implemented"))
        else:  # pragma: no cover - a new engine event this layer does not know
            raise TypeError(f"unexpected engine event {event!r}")

    # ---------------------------------------------------------------------- I/O

    async def _flush(self) -> None:
        data = self.engine.data_to_send()
        if not data:
            return
        scope = self._scope
        assert scope is not None, "flush outside the session loop"
        self._waiting = "send"
        scope.deadline = trio.current_time() + self._settings.command_timeout
        try:
            await self.stream.send_all(data)
        finally:
            self._settle(scope)

    async def _receive(self) -> bytes:
        now = trio.current_time()
        if self.engine.state in _DATA_STATES:
            if self._data_deadline is None:
                # Content that came in the same read as DATA/BDAT counts as progress.
                credit = min(self._early_credit, self._settings.data_timeout)
                self._data_deadline = now + self._settings.command_timeout + credit
            deadline = self._data_deadline
        else:
            self._data_deadline = None
            self._early_credit = 0.0
            deadline = now + self._settings.command_timeout
        scope = self._scope
        assert scope is not None, "read outside the session loop"
        self._waiting = "receive"
        scope.deadline = deadline
        try:
            data = bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""  # the peer went away: the engine treats it as EOF
        finally:
            self._settle(scope)
        return data

    async def _final(
        self, reply: Reply, what: str, *, seconds: float = _FINAL_FLUSH_SECONDS
    ) -> None:
        """Send ``reply`` as the session's last words and log why."""
        self.log.event(what, reply=_show(reply))
        self.engine.send(Shutdown(reply=reply))
        await self._send_quietly(self.engine.data_to_send(), seconds=seconds)

    def _closing_reply(self, status: str, text: str) -> Reply:
        """A 421 that shows its enhanced status whether or not EHLO came first.

        The engine adds status codes only after EHLO (RFC 2034 §3); a session's last
        words carry them anyway, in the free text of a plain reply, as Postfix does,
        so an operator reading a client's log sees why it was cut off.
        """
        text = f"{self._settings.hostname} {text}"
        if self.engine.esmtp and self.context.engine_config.enhanced_status_codes:
            return Reply(code=421, status=status, lines=(text,))
        return Reply(code=421, lines=(f"{status} {text}",))

    async def _emergency_reply(self) -> None:
        # The engine may be in its ERROR state: write the reply ourselves.
        reply = Reply(code=421, status="4.3.0", lines=("Internal error, closing connection",))
        await self._send_quietly(reply.to_bytes(enhanced=True))

    async def _send_quietly(self, data: bytes, *, seconds: float = _FINAL_FLUSH_SECONDS) -> None:
        """Best effort: the session is ending whether or not these bytes get out."""
        with trio.move_on_after(seconds):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.stream.send_all(data)

    # ------------------------------------------------------------- transactions

    def _mail(self, event: MailFrom) -> None:
        if self._shutdown_requested:
            reply = self._closing_reply(*_SHUTDOWN)
            self.engine.send(Shutdown(reply=reply))
            self.log.event("shutdown", reply=_show(reply))
            return
        sender = str(event.sender) if event.sender is not None else ""
        envelope = Envelope(queue_id=new_queue_id(), sender=sender)
        binary = event.params.body is Body.BINARY_MIME
        self.transaction = _Transaction(envelope=envelope, params=event.params, binary=binary)
        self.engine.send(Accept())
        self.log.event("mail", queue_id=envelope.queue_id, sender=f"<{sender}>")

    async def _rcpt(self, event: RcptTo) -> None:
        assert self.transaction is not None, "RCPT outside a transaction"
        router = self.context.router
        decision = decide(
            event.recipient,
            event.raw,
            local=self.context.config.local,
            trusted=self.trusted,
            router=router,
        )
        if isinstance(decision, Route):
            # A routed recipient may still be checked (Minger on a forward route).
            decision = await router.verify(event.recipient) or decision
        if isinstance(decision, LocalDelivery):
            self.transaction.envelope.add(decision.mailbox, event.raw)
            self.transaction.local.append((event.raw, event.params))
            self.engine.send(Accept())
            self.log.event("rcpt", to=f"<{event.raw}>", mailbox=decision.mailbox)
        elif isinstance(decision, Refusal):
            reject = Reject(code=decision.code, status=decision.status, text=decision.text)
            self.engine.send(reject)
            self.log.event("reject", command="RCPT", reply=_show(reject.reply()))
            if decision.unknown_local and self.context.rejected_log is not None:
                await self._log_rejected(event.raw, reject.reply())
        else:
            routed = RoutedRecipient(address=event.raw, route=decision, params=event.params)
            self.transaction.routed.append(routed)
            self.engine.send(Accept())
            self.log.event("rcpt", to=f"<{event.raw}>", route=decision.next_hop)

    async def _log_rejected(self, address: str, reply: Reply) -> None:
        log, transaction = self.context.rejected_log, self.transaction
        assert log is not None
        assert transaction is not None
        append = partial(
            log.append,
            when=datetime.now(UTC),
            client_ip=self.peer.ip,
            helo=self.engine.helo_name or "",
            mail_from=f"<{transaction.envelope.sender}>",
            address=address,
            reply=_show(reply),
        )
        await trio.to_thread.run_sync(append)

    async def _message_data(self, data: bytes) -> None:
        if self.transaction is None:  # pragma: no cover - the engine sends data only in one
            return
        self._progress(len(data))
        if self.transaction.spool is None:
            self.transaction.spool = self._new_spool(self.transaction)
        await self.transaction.spool.write(data)

    def _progress(self, size: int) -> None:
        """Minimum data rate: content received buys time, up to data_timeout ahead."""
        credit = size / self._settings.min_data_rate
        if self._data_deadline is None:
            self._early_credit += credit
        else:
            self._data_deadline = min(
                self._data_deadline + credit,
                trio.current_time() + self._settings.data_timeout,
            )

    def _new_spool(self, transaction: _Transaction) -> Spool:
        return Spool(self._settings.spool_dir, binary=transaction.binary)

    async def _message_end(self) -> None:
        transaction = self.transaction
        assert transaction is not None, "message end outside a transaction"
        if transaction.spool is None:
            transaction.spool = self._new_spool(transaction)
        spool, envelope = transaction.spool, transaction.envelope
        add_date = (
            self.context.config.smtp.add_missing_date_header and self.trusted and not spool.has_date
        )
        trace = TraceInfo(
            hostname=self._settings.hostname,
            peer_ip=self.peer.ip,
            helo=self.engine.helo_name,
            protocol=self.engine.with_protocol,
            tls=self.tls_description,
        )
        try:
            delivered = []
            if envelope.mailboxes:
                delivered = await self.context.delivery.deliver(
                    spool, envelope, trace, add_date=add_date
                )
            if transaction.routed:
                await self.context.router.enqueue(
                    spool,
                    envelope.sender,
                    transaction.routed,
                    trace,
                    queue_id=envelope.queue_id,
                    mail_params=transaction.params,
                )
            if delivered:
                await self.context.router.delivered_locally(
                    spool, envelope.sender, transaction.local, trace, mail_params=transaction.params
                )
        except OSError as error:
            self.log.event("delivery-failed", queue_id=envelope.queue_id, error=str(error))
            self.engine.send(
                Reject(code=451, status="4.3.0", text="Local delivery failed, try again later")
            )
        else:
            self.engine.send(Accept(text=f"Ok: queued as {envelope.queue_id}"))
            self.log.event(
                "accept",
                queue_id=envelope.queue_id,
                size=spool.size,
                nrcpt=envelope.recipient_count + len(transaction.routed),
            )
            for copy in delivered:
                self.log.event(
                    "delivered",
                    queue_id=envelope.queue_id,
                    mailbox=copy.mailbox,
                    file=copy.path.name,
                )
        await self._end_transaction()

    async def _end_transaction(self) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None and transaction.spool is not None:
            await transaction.spool.aclose()

    # ----------------------------------------------------------- AUTH and TLS

    async def _auth(self, event: AuthCredentials) -> None:
        stored = self.context.config.local.passwords.get(event.username)
        ok = await trio.to_thread.run_sync(
            verify_password, event.password, stored, limiter=self.context.auth_limiter
        )
        # Acting as another user (a different authorization identity) is not offered.
        if ok and event.authorization_id in ("", event.username):
            self.engine.send(Accept())
            self.log.event("auth", mechanism=event.mechanism, user=event.username)
            return
        self._auth_failures += 1
        await trio.sleep(self._settings.auth_failure_delay)
        if self._auth_failures >= self._settings.max_auth_failures:
            reply = Reply(
                code=421, status="4.7.0", lines=("Too many failed authentications, goodbye",)
            )
            self.engine.send(Shutdown(reply=reply))
        else:
            reply = Reply(code=535, status="5.7.8", lines=("Authentication credentials invalid",))
            self.engine.send(Reject(code=535, status="5.7.8", text=reply.text))
        self.log.event("reject", command="AUTH", user=event.username, reply=_show(reply))

    async def _start_tls(self) -> None:
        assert self.context.ssl_context is not None, "STARTTLS offered without [tls]"
        await self._flush()
        tls = trio.SSLStream(self.stream, self.context.ssl_context, server_side=True)
        self.stream = tls
        with trio.move_on_after(self._settings.command_timeout) as scope:
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as error:
                cause = error.__cause__ or error
                self.log.event("tls-failed", error=str(cause))
                raise _Gone from None
        if scope.cancelled_caught:
            self.log.event("tls-failed", error="handshake timeout")
            raise _Gone
        version, cipher = tls.version(), tls.cipher()
        self.tls_description = f"{version} with cipher {cipher[0] if cipher else 'unknown'}"
        self.engine.tls_established()
        self.log.event("tls", version=str(version), cipher=cipher[0] if cipher else "")


def _in_networks(ip: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _show(reply: Reply) -> str:
    """A reply as one log field: code, status and text."""
    status = f" {reply.status}" if reply.status else ""
    return f"{reply.code}{status} {' / '.join(reply.lines)}"


_TIMEOUT = ("4.4.2", "Error: timeout exceeded")
_SHUTDOWN = ("4.3.2", "Service shutting down, closing transmission channel")
_TOO_MANY = ("4.7.0", "Error: too many connections")
