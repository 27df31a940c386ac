"""The one recipient decision: local mailbox, route, or refusal; and the Router plug-in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from sansio_smtp import Mailbox, MailParams
from trio_server.config import LocalSettings
from trio_server.delivery import Spool, TraceInfo
from trio_server.routing import (
    LocalDelivery,
    NoRoutes,
    Refusal,
    Route,
    RoutedRecipient,
    decide,
)
from trio_server.server import SMTPServer

from .conftest import connect_memory, write_config

LOCAL = LocalSettings(
    domains=frozenset({"example.test"}),
    mailboxes={"alice": ("alice", "a.smith"), "postmaster": ("postmaster",)},
)


def mailbox(address: str) -> Mailbox:
    local, at, domain = address.rpartition("@")
    return (
        Mailbox(local_part=local, domain=domain) if at else Mailbox(local_part=address, domain="")
    )


@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice@example.test", LocalDelivery(mailbox="alice")),
        ("A.Smith@EXAMPLE.TEST", LocalDelivery(mailbox="alice")),
        ("postmaster", LocalDelivery(mailbox="postmaster")),
    ],
)
def test_local_recipients(address: str, expected: LocalDelivery, trusted: bool) -> None:
    """Local domains and local parts match case-insensitively, trusted or not."""
    assert decide(mailbox(address), address, local=LOCAL, trusted=trusted, router=NoRoutes()) == (
        expected
    )


def test_unknown_local_recipient() -> None:
    """An unknown local part is 550 5.1.1, marked for the rejected-recipients log."""
    refusal = decide(
        mailbox("carol@example.test"),
        "carol@example.test",
        local=LOCAL,
        trusted=True,
        router=NoRoutes(),
    )
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.status, refusal.unknown_local) == (550, "5.1.1", True)


@pytest.mark.parametrize(("trusted", "text"), [(False, "Relay access denied"), (True, "No route")])
def test_other_domains_refused_without_route(trusted: bool, text: str) -> None:
    """With no router routes, other domains are 550 5.7.1 for everyone."""
    refusal = decide(
        mailbox("x@elsewhere.test"),
        "x@elsewhere.test",
        local=LOCAL,
        trusted=trusted,
        router=NoRoutes(),
    )
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.status, refusal.unknown_local) == (550, "5.7.1", False)
    assert text in refusal.text


def test_reply_text_is_escaped() -> None:
    """The address quoted in the reply cannot carry control characters."""
    refusal = decide(
        mailbox("x@elsewhere.test"),
        "x\r\n250 ok@elsewhere.test",
        local=LOCAL,
        trusted=False,
        router=NoRoutes(),
    )
    assert isinstance(refusal, Refusal)
    assert "\r" not in refusal.text
    assert "\n" not in refusal.text


@dataclass
class FakeRouter:
    """Routes *@branch.test to a LAN server for anyone; refuses x@branch.test at verify."""

    fail_enqueue: bool = False
    enqueued: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    asked: list[bool] = field(default_factory=list)
    notify: list[frozenset[str] | None] = field(default_factory=list)

    def route(self, recipient: Mailbox, *, trusted: bool) -> Route | None:
        self.asked.append(trusted)
        return Route(next_hop="10.0.0.2:25") if recipient.domain == "branch.test" else None

    async def delivered_locally(self, *args: object, **kwargs: object) -> None:
        pass

    async def verify(self, recipient: Mailbox) -> Refusal | None:
        if recipient.local_part == "x":
            return Refusal(code=550, status="5.1.1", text="unknown at branch", unknown_local=True)
        return None

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
        assert queue_id is not None
        assert mail_params is not None
        self.notify.extend(r.params.notify if r.params else None for r in recipients)
        if self.fail_enqueue:
            raise OSError(28, "queue full")
        read, write = os.pipe()
        try:
            await trio.to_thread.run_sync(spool.copy_to, write)
            os.close(write)
            content = os.read(read, 65536)
        finally:
            os.close(read)
        self.enqueued.append((sender, [r.address for r in recipients], content))


@pytest.mark.parametrize("fail", [False, True])
async def test_router_plugs_into_the_session(
    tmp_path: Path, nursery: trio.Nursery, fail: bool
) -> None:
    """A Router's routes are accepted, verified, and handed the message before 250."""
    config = write_config(tmp_path, server={"local_networks": ["10.0.0.0/8"]})
    router = FakeRouter(fail_enqueue=fail)
    server = SMTPServer(config, router=router)
    server.prepare()
    client = await connect_memory(nursery, server)
    assert (await client.reply()).code == 220
    await client.command("EHLO c.test")
    await client.command("MAIL FROM:<s@remote.test>")
    assert (await client.command("RCPT TO:<y@branch.test> NOTIFY=FAILURE")).code == 250
    assert (await client.command("RCPT TO:<x@branch.test>")).code == 550
    assert (await client.command("RCPT TO:<z@elsewhere.test>")).code == 550
    assert (await client.command("RCPT TO:<alice@example.test>")).code == 250
    assert router.asked == [False, False, False]  # the outsider is never "trusted"
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: r\r\n\r\nrouted\r\n.\r\n")
    reply = await client.reply()
    if fail:
        assert (reply.code, reply.status) == (451, "4.3.0")
        assert router.enqueued == []
    else:
        assert reply.code == 250
        ((sender, recipients, content),) = router.enqueued
        assert (sender, recipients) == ("s@remote.test", ["y@branch.test"])
        assert content == b"Subject: r\n\nrouted\n"
        assert [set(map(str, n or ())) for n in router.notify] == [{"FAILURE"}]
