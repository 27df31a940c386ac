"""An async Minger client over UDP (draft-hathcock-minger-06 §2, §3).

:func:`verify` sends one query datagram and waits for the answer, retransmitting with
exponential backoff (a query is idempotent, notes §4). Minger responses carry no
transaction id and no authentication, so the client defends itself as the draft allows:

- each call uses a fresh socket on a kernel-chosen ephemeral port, so an off-path sender
  must guess the port as well as the timing;
- a datagram from any address or port other than the server's is ignored;
- a datagram that does not decode, or answers another mailbox, is ignored
  (:func:`minger.match_response`); a late answer to an earlier attempt of the same query
  is accepted, since all attempts ask the same question.

No answer within ``timeout`` raises :class:`MingerTimeout`: never a status, and never
"valid". MDaemon maps that to an SMTP 451 (notes §5.3).
"""

from __future__ import annotations

import ipaddress
import logging

import trio

import minger

__all__ = ["MingerClientError", "MingerTimeout", "attempt_waits", "verify"]

logger = logging.getLogger("trio_server.minger")

#: Total time :func:`verify` waits by default: Halon's default Minger timeout (notes §5.2).
DEFAULT_TIMEOUT = 5.0
#: Retransmissions after the first datagram.
DEFAULT_RETRIES = 2
#: Each attempt waits this many times longer than the one before.
DEFAULT_BACKOFF = 2.0


class MingerClientError(Exception):
    """No usable answer: the server name did not resolve, or nothing came back."""


class MingerTimeout(MingerClientError, TimeoutError):
    """No matching answer arrived within the timeout.

    Attributes:
        mailbox: the address that was queried.
        server: the server as given to :func:`verify`.
        attempts: how many datagrams were sent.
    """

    def __init__(self, mailbox: str, server: tuple[str, int], attempts: int, timeout: float):
        host, port = server
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(
            f"no Minger answer for {mailbox} from {where} within {timeout:g}s"
            f" ({attempts} attempt{'s' if attempts != 1 else ''})"
        )
        self.mailbox = mailbox
        self.server = server
        self.attempts = attempts


def attempt_waits(timeout: float, retries: int, backoff: float) -> list[float]:
    """Split ``timeout`` into ``retries + 1`` waits, each ``backoff`` times the last.

    With the defaults (5 s, 2 retries, factor 2): about 0.71 s, 1.43 s and 2.86 s, so the
    whole call never takes longer than ``timeout``.

    Args:
        timeout: total seconds to wait; must be positive.
        retries: retransmissions after the first datagram; at least 0.
        backoff: growth factor between waits; at least 1.

    Returns:
        The wait after each datagram, in seconds.

    Raises:
        ValueError: a parameter is out of range.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    if retries < 0:
        raise ValueError(f"retries must be at least 0, not {retries!r}")
    if not backoff >= 1:
        raise ValueError(f"backoff must be at least 1, not {backoff!r}")
    weights = [backoff**attempt for attempt in range(retries + 1)]
    total = sum(weights)
    return [timeout * weight / total for weight in weights]


def _same_endpoint(source: object, server: tuple[object, ...]) -> bool:
    """Whether a datagram's source is the server's address and port."""
    if not (isinstance(source, tuple) and len(source) >= 2):
        return False
    try:
        source_ip = ipaddress.ip_address(str(source[0]).partition("%")[0])
        server_ip = ipaddress.ip_address(str(server[0]).partition("%")[0])
    except ValueError:
        return False
    return source_ip == server_ip and source[1] == server[1]


async def verify(
    address: str,
    server: tuple[str, int],
    secret: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> minger.Status:
    """Ask a Minger server whether ``address`` exists.

    Args:
        address: the mailbox to verify, sent exactly as given.
        server: the server's ``(host, port)``; the host may be a name or an IP literal.
        secret: the shared secret, or None for an anonymous query (-06 §4).
        timeout: total seconds to wait for an answer, retransmissions included.
        retries: retransmissions after the first datagram.
        backoff: how much longer each attempt waits than the one before.

    Returns:
        The server's status. 3, 4 and 5 describe the address; 0, 1 and 2 say the query
        was refused (malformed, peer not allowed, bad or missing credentials).

    Raises:
        minger.MingerError: ``address`` or ``secret`` cannot be sent (nothing was sent).
        ValueError: ``timeout``, ``retries`` or ``backoff`` is out of range.
        MingerTimeout: no matching answer arrived in time.
        MingerClientError: the server's host name did not resolve.
    """
    query = minger.make_query(address, secret=secret)
    payload = minger.encode_query(query)
    waits = attempt_waits(timeout, retries, backoff)
    host, port = server
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
    except OSError as error:
        raise MingerClientError(f"cannot resolve Minger server {host!r}: {error}") from None
    family, _, _, _, sockaddr = infos[0]
    with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
        for attempt, wait in enumerate(waits, start=1):
            try:
                await sock.sendto(payload, sockaddr)
            except OSError as error:
                # Treated like a lost datagram: the next attempt may get through.
                logger.debug("minger send to %s failed: %s", host, error)
            with trio.move_on_after(wait):
                # Bounded by the cancel scope: at most ``wait`` seconds of datagrams.
                while True:
                    try:
                        data, source = await sock.recvfrom(minger.MAX_DATAGRAM + 1)
                    except OSError as error:  # an ICMP error on some platforms
                        logger.debug("minger receive from %s failed: %s", host, error)
                        await trio.sleep(wait / 10)
                        continue
                    if not _same_endpoint(source, sockaddr):
                        logger.debug("minger ignored a datagram from %r", source)
                        continue
                    response = minger.match_response(query, data)
                    if response is None:
                        logger.debug("minger ignored a non-matching answer from %s", host)
                        continue
                    return response.status
            logger.debug("minger attempt %d for %s got no answer", attempt, address)
    raise MingerTimeout(address, server, len(waits), timeout)
