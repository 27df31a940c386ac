"""The sansio-smtpd server: listeners, the connection limit and graceful shutdown.

``SMTPServer.serve`` is meant for ``nursery.start``: it binds every ``listen`` address
(port 0 picks a free port) and reports the bound addresses through ``task_status``, so
tests never race the listener. Each accepted connection becomes one
:class:`~trio_server.connection.SMTPConnection`; :meth:`SMTPServer.handle` takes any
``trio.abc.Stream`` plus a peer address, so tests can drive it over memory streams.

Shutdown (SIGTERM/SIGINT, or :meth:`SMTPServer.begin_shutdown`): stop accepting, answer
idle sessions 421 4.3.2, let sessions inside a transaction finish, and cancel whatever
is left after ``shutdown_timeout`` seconds.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from functools import partial
from typing import Literal

import trio

from sansio_smtp import ServerConfig

from .config import Config
from .connection import ConnectionContext, Peer, SMTPConnection
from .delivery import MaildirDelivery
from .log import RejectedRecipientsLog, logger
from .routing import NoRoutes, Router

__all__ = ["DirectSocketStream", "SMTPServer", "build_engine_config", "build_ssl_context"]

# How many sends and receives may complete without waiting before one yields to the
# scheduler anyway, so a peer that keeps the socket full cannot starve other sessions.
CHECKPOINT_EVERY = 64


class DirectSocketStream(trio.abc.Stream):
    """A connected socket as a Trio stream that tries each system call before waiting.

    ``trio.SocketStream`` passes through the scheduler on every send and receive; here a
    ``recv`` or ``send`` that can complete at once costs one system call, and the task
    waits (``wait_readable`` / ``wait_writable``) only when the kernel says it would
    block. Every :data:`CHECKPOINT_EVERY` operations that did not wait still yield, and
    cancellation is seen whenever the task waits, so deadlines keep working: an
    operation that completes at once may finish before a cancellation is noticed.
    ``trio.SSLStream`` can wrap it (STARTTLS). Two tasks sending (or receiving) at once
    get ``trio.BusyResourceError``.
    """

    def __init__(self, sock: socket.socket) -> None:
        """Take ownership of ``sock``, a connected stream socket (made non-blocking)."""
        sock.setblocking(False)
        self.socket = sock
        self._closed = False
        self._sending = False
        self._receiving = False
        self._operations = 0

    async def _maybe_yield(self) -> None:
        self._operations += 1
        if self._operations >= CHECKPOINT_EVERY:
            self._operations = 0
            await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes (64 KiB by default); b"" once the peer has finished."""
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await self._maybe_yield()
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the stream was closed")
                try:
                    return self.socket.recv(max_bytes or 65536)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(self.socket)
                except OSError as error:
                    raise trio.BrokenResourceError(str(error)) from error
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send every byte of ``data``, waiting whenever the socket buffer is full."""
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await self._maybe_yield()
            with memoryview(data) as view:
                sent = 0
                while sent < len(view):
                    if self._closed:
                        raise trio.ClosedResourceError("the stream was closed")
                    try:
                        sent += self.socket.send(view[sent:])
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(self.socket)
                    except OSError as error:
                        raise trio.BrokenResourceError(str(error)) from error
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket can take more data."""
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        await trio.lowlevel.wait_writable(self.socket)

    async def aclose(self) -> None:
        """Close the socket; a task waiting on it gets ``trio.ClosedResourceError``."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()


def build_engine_config(config: Config) -> ServerConfig:
    """The engine's ServerConfig for this server's settings."""
    server, smtp = config.server, config.smtp
    return ServerConfig(
        hostname=server.hostname,
        max_message_size=server.max_message_size,
        max_recipients=server.max_recipients,
        bare_newlines=server.bare_newlines,
        dsn=smtp.dsn,
        starttls=config.tls is not None,
        # AUTH only where a password can be checked, and only over TLS (RFC 4954 §4).
        auth_mechanisms=("PLAIN", "LOGIN") if config.local.passwords else (),
        auth_require_tls=True,
        refuse_helo_containing=smtp.refuse_helo_containing,
        forbid_percent_in_local_part=smtp.forbid_percent_in_address,
        forbid_bang_in_local_part=smtp.forbid_bang_in_address,
    )


def build_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server-side TLS context from ``[tls]``, or None without it.

    Raises:
        OSError, ssl.SSLError: the certificate or key cannot be loaded.
    """
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.certificate, config.tls.private_key)
    return context


class SMTPServer:
    """Accepts connections and runs one session per connection."""

    def __init__(
        self,
        config: Config,
        *,
        router: Router | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Build the server (no I/O yet; call :meth:`prepare` before serving).

        Args:
            config: the loaded configuration.
            router: where non-local recipients of trusted clients go; default none.
            ssl_context: overrides the context built from ``[tls]`` (tests).
        """
        self.config = config
        smtp = config.smtp
        self.context = ConnectionContext(
            config=config,
            engine_config=build_engine_config(config),
            ssl_context=ssl_context or build_ssl_context(config),
            delivery=MaildirDelivery(
                config.local.maildir_root,
                original_recipients_header=(
                    smtp.original_recipients_header if smtp.add_original_recipients_header else None
                ),
            ),
            router=router or NoRoutes(),
            rejected_log=(
                RejectedRecipientsLog(smtp.rejected_recipients_log)
                if smtp.log_rejected_recipients
                else None
            ),
        )
        self.connections: set[SMTPConnection] = set()
        self._ids = itertools.count(1)
        self._closing = False
        self._accept_scope: trio.CancelScope | None = None
        self._handlers_scope: trio.CancelScope | None = None

    def prepare(self) -> None:
        """Create the spool folder and every mailbox's Maildir (blocking, at start-up)."""
        self.config.server.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.context.delivery.prepare(list(self.config.local.mailboxes))

    async def handle(self, stream: trio.abc.Stream, peer: Peer) -> None:
        """Serve one connection on ``stream`` until it ends (never raises but Cancelled)."""
        connection = SMTPConnection(self.context, stream, peer, next(self._ids))
        refuse: Literal["busy", "stopping"] | None = None
        if self._closing:
            refuse = "stopping"
        elif len(self.connections) >= self.config.server.max_connections:
            refuse = "busy"
        self.connections.add(connection)
        try:
            await connection.run(refuse=refuse)
        finally:
            self.connections.discard(connection)

    async def _handle_socket(self, stream: trio.SocketStream) -> None:
        try:
            address = stream.socket.getpeername()
            peer = Peer(ip=str(address[0]), port=int(address[1]))
        except OSError:  # the peer left before we looked
            await trio.aclose_forcefully(stream)
            return
        # The listener's SocketStream has set TCP_NODELAY; the session runs on the same
        # socket through DirectSocketStream, which costs far less per send and receive.
        # Family and type given, so adopting the descriptor makes no system call.
        accepted = stream.socket
        raw = socket.socket(accepted.family, accepted.type, accepted.proto, accepted.detach())
        await self.handle(DirectSocketStream(raw), peer)

    async def serve(
        self, *, task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on every ``[server] listen`` address until :meth:`begin_shutdown`.

        Reports the bound ``(host, port)`` addresses through ``task_status`` once all
        listeners are up. Returns when every session has ended.
        """
        listeners: list[trio.SocketListener] = []
        try:
            for address in self.config.server.listen:
                listeners += await trio.open_tcp_listeners(address.port, host=address.host)
        except BaseException:
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        bound = [_sockname(listener) for listener in listeners]
        async with trio.open_nursery() as handlers:
            self._handlers_scope = handlers.cancel_scope
            async with trio.open_nursery() as accept:
                self._accept_scope = accept.cancel_scope
                accept.start_soon(
                    partial(
                        trio.serve_listeners,
                        self._handle_socket,
                        listeners,
                        handler_nursery=handlers,
                    )
                )
                for host, port in bound:
                    logger.info(
                        "listening on %s", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    )
                task_status.started(bound)
            logger.info("stopped accepting; %d session(s) open", len(self.connections))

    def begin_shutdown(self) -> None:
        """Stop accepting, end idle sessions (421 4.3.2), bound the rest by a deadline."""
        if self._closing:
            return
        self._closing = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for connection in list(self.connections):
            connection.request_shutdown()
        if self._handlers_scope is not None:
            self._handlers_scope.deadline = (
                trio.current_time() + self.config.server.shutdown_timeout
            )


def _sockname(listener: trio.SocketListener) -> tuple[str, int]:
    name = listener.socket.getsockname()
    return str(name[0]), int(name[1])
