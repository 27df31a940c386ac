"""Where a recipient goes: a local mailbox, a route elsewhere, or a refusal.

This is the one place that decides. :func:`decide` answers for every RCPT TO:

- a local domain (case-insensitive): the local part's mailbox, or 550 5.1.1;
- any other domain: whatever the :class:`Router` says, told whether the client is
  trusted (in ``local_networks`` or authenticated). The default, :class:`NoRoutes`,
  refuses everything with 550 5.7.1; the forwarding issue plugs in a router with real
  routes without touching the connection code.

Never an open relay: a router may route an *untrusted* client's recipient only to a
destination that is one of ours (a ``[[forward]]`` route to a LAN server); a general
route out (the smarthost) is for trusted clients only. ``RouteTable.next_hop`` in
:mod:`trio_server.routes` keeps that rule with its ``may_relay`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sansio_smtp import escape_text

from .config import LocalSettings

if TYPE_CHECKING:
    from sansio_smtp import Mailbox, MailParams, RcptParams

    from .delivery import Spool, TraceInfo

__all__ = [
    "LocalDelivery",
    "NoRoutes",
    "Refusal",
    "Route",
    "RoutedRecipient",
    "Router",
    "decide",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalDelivery:
    """Deliver into this local mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Refuse the recipient with this reply.

    ``unknown_local`` marks the "no such local user" case, which the rejected-recipients
    log records.
    """

    code: int
    status: str
    text: str
    unknown_local: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A way out for a non-local recipient (filled in by the forwarding issue)."""

    next_hop: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutedRecipient:
    """A non-local recipient accepted on a route: the RCPT address as given, and how.

    ``params`` are its RCPT parameters (NOTIFY, ORCPT), which the queue keeps for DSNs.
    """

    address: str
    route: Route
    params: RcptParams | None = None


class Router(Protocol):
    """Decides where non-local recipients of trusted clients go."""

    def route(self, recipient: Mailbox, *, trusted: bool) -> Route | None:
        """The route for ``recipient``, or None when there is none (550 5.7.1).

        ``trusted``: the client is in ``local_networks`` or authenticated. Without it,
        only routes to our own destinations are allowed (no open relay).
        """
        ...

    async def verify(self, recipient: Mailbox) -> Refusal | None:
        """Check a routed recipient before accepting it (e.g. Minger on a forward route).

        Returns:
            None to accept, or the refusal to send instead.
        """
        ...

    async def enqueue(
        self,
        spool: Spool,
        sender: str,
        recipients: Sequence[RoutedRecipient],
        trace: TraceInfo,
        *,
        queue_id: str | None = None,
        mail_params: MailParams | None = None,
    ) -> None:
        """Take durable responsibility for the message before 250 is sent.

        Args:
            spool: the received content.
            sender: the reverse-path, "" for ``<>``.
            recipients: the routed recipients, in RCPT order, with their parameters.
            trace: facts for the ``Received:`` header.
            queue_id: the transaction's queue id (one id in the logs).
            mail_params: the MAIL FROM parameters (ENVID, RET, BODY, SMTPUTF8).

        Raises:
            OSError: the message could not be stored; the client gets 451 4.3.0.
        """
        ...

    async def delivered_locally(
        self,
        spool: Spool,
        sender: str,
        recipients: Sequence[tuple[str, RcptParams | None]],
        trace: TraceInfo,
        *,
        mail_params: MailParams | None = None,
    ) -> None:
        """The local copies are durable: report "delivered" where NOTIFY asked for it.

        Args:
            spool: the received content (its header section is quoted).
            sender: the reverse-path, "" for ``<>`` (never reported to).
            recipients: (address as given in RCPT TO, its RCPT parameters), in order.
            trace: the session facts.
            mail_params: the MAIL FROM parameters (ENVID, RET, SMTPUTF8).

        Never raises: the message is delivered whatever happens to the report.
        """
        ...


class NoRoutes:
    """The default router: nothing leaves this server."""

    def route(self, recipient: Mailbox, *, trusted: bool) -> Route | None:
        """Always None: no route exists."""
        del recipient, trusted
        return None

    async def verify(self, recipient: Mailbox) -> Refusal | None:
        """Never called, since :meth:`route` never routes."""
        raise AssertionError("NoRoutes.verify called without a route")

    async def enqueue(
        self,
        spool: Spool,
        sender: str,
        recipients: Sequence[RoutedRecipient],
        trace: TraceInfo,
        *,
        queue_id: str | None = None,
        mail_params: MailParams | None = None,
    ) -> None:
        """Never called, since :meth:`route` never routes."""
        raise AssertionError("NoRoutes.enqueue called without a route")

    async def delivered_locally(
        self,
        spool: Spool,
        sender: str,
        recipients: Sequence[tuple[str, RcptParams | None]],
        trace: TraceInfo,
        *,
        mail_params: MailParams | None = None,
    ) -> None:
        """Nothing: without the queue there is no report machinery."""


def decide(
    recipient: Mailbox,
    address: str,
    *,
    local: LocalSettings,
    trusted: bool,
    router: Router,
) -> LocalDelivery | Route | Refusal:
    """Decide what happens to one RCPT TO.

    Args:
        recipient: the parsed recipient.
        address: the address as the client wrote it (for reply texts).
        local: the ``[local]`` settings.
        trusted: the client is in ``local_networks`` or authenticated.
        router: asked for non-local recipients.
    """
    shown = escape_text(address, limit=320)
    # RFC 5321 §4.5.1: <postmaster> without a domain is always ours.
    if recipient.domain == "" or local.is_local_domain(recipient.domain):
        mailbox = local.mailbox_for(recipient.local_part)
        if mailbox is not None:
            return LocalDelivery(mailbox=mailbox)
        return Refusal(
            code=550,
            status="5.1.1",
            text=f"<{shown}>: Recipient address rejected: User unknown",
            unknown_local=True,
        )
    route = router.route(recipient, trusted=trusted)
    if route is not None:
        return route
    if not trusted:
        return Refusal(code=550, status="5.7.1", text=f"<{shown}>: Relay access denied")
    return Refusal(code=550, status="5.7.1", text=f"<{shown}>: No route to this domain")
