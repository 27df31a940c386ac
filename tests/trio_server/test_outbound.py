"""Tests for trio_server.outbound: the delivery loop's retries, ages and reports."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
from collections.abc import Sequence
from email.message import Message
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansio_smtp import (
    Body,
    Mailbox,
    MailParams,
    Notify,
    OriginalRecipient,
    RcptParams,
    Reject,
    Ret,
)
from trio_server.delivery import MaildirDelivery, TraceInfo
from trio_server.delivery import Spool as ContentSpool
from trio_server.outbound import (
    DeliveryAgent,
    ForwardingRouter,
    HopReply,
    ReportRouter,
    SmtpTransmitter,
    TransmitResult,
)
from trio_server.routes import ForwardRoute, HostPort, QueueSettings, RelaySettings, RouteTable
from trio_server.routing import Route, RoutedRecipient
from trio_server.spool import Envelope, Recipient, Spool
from trio_server.verify import MingerLookup

from .nexthop import AiosmtpdHop, EngineHop, free_port

EPOCH = 1_800_000_000.0
MESSAGE = b"From: alice@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
HOP = "127.0.0.1:2526"
SETTINGS = QueueSettings(retry_schedule=(60, 300), max_age=3600, delay_notice_after=600)


def wall_clock() -> float:
    """Wall-clock seconds that follow Trio's (mock) clock."""
    return EPOCH + trio.current_time()


class FakeHop:
    """A next hop that answers from a script: one entry per transaction."""

    def __init__(self, *script: dict[str, HopReply] | OSError, dsn: bool = False) -> None:
        self.script = list(script)
        self.dsn = dsn
        self.calls: list[tuple[float, str, list[str]]] = []

    async def __call__(
        self, hop: str, envelope: Envelope, recipients: Sequence[Recipient], message: bytes
    ) -> TransmitResult:
        self.calls.append((trio.current_time(), hop, [r.address for r in recipients]))
        assert message == MESSAGE
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, OSError):
            raise step
        return TransmitResult(remote_mta="next.example.test", dsn=self.dsn, replies=step)


class Reports:
    """A report sink that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []

    async def __call__(self, address: str, report: bytes) -> None:
        self.sent.append((address, email.message_from_bytes(report, policy=email.policy.default)))

    def blocks(self, index: int) -> list[Message]:
        """The delivery-status blocks of the index-th report."""
        parts = self.sent[index][1].get_payload()
        assert isinstance(parts, list)
        status = parts[1]
        assert isinstance(status, Message)
        blocks = status.get_payload()
        assert isinstance(blocks, list)
        return [b for b in blocks if isinstance(b, Message)]


OK = HopReply(code=250, status="2.0.0", text="queued")
LATER = HopReply(code=451, status="4.3.0", text="try later")
NO_USER = HopReply(code=550, status="5.1.1", text="no such user")


def _recipient(address: str, **changes: object) -> Recipient:
    return dataclasses.replace(Recipient(address=address, next_hop=HOP), **changes)  # type: ignore[arg-type]


def _queue(
    tmp_path: Path, *recipients: Recipient, sender: str = "alice@example.test"
) -> tuple[Spool, Envelope]:
    spool = Spool.open(tmp_path, clock=wall_clock)
    envelope = Envelope(
        id="",
        sender=sender,
        arrival=EPOCH,
        envid="ENV-1",
        recipients=recipients or (_recipient("bob@branch.example.test"),),
    )
    return spool, spool.enqueue(envelope, MESSAGE)


def _agent(spool: Spool, hop: FakeHop, reports: Reports) -> DeliveryAgent:
    return DeliveryAgent(
        spool,
        settings=SETTINGS,
        transmit=hop,
        report=reports,
        hostname="mx.example.test",
        wall_clock=wall_clock,
        threaded_io=False,
    )


async def _drain(agent: DeliveryAgent, *, limit: int = 50) -> None:
    """Run passes, sleeping until each next due time, until the queue is empty."""
    for _ in range(limit):
        next_due = await agent.run_due()
        if next_due is None:
            return
        await trio.sleep_until(next_due - EPOCH)
    raise AssertionError("queue did not drain")


async def test_delivered_first_time(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """A 250 from the hop empties the queue without a report (NOTIFY absent)."""
    spool, _ = _queue(tmp_path)
    hop, reports = FakeHop({"bob@branch.example.test": OK}), Reports()
    await _drain(_agent(spool, hop, reports))
    assert len(hop.calls) == 1
    assert reports.sent == []
    assert list(spool.scan()) == []


async def test_down_then_up_retries_on_schedule(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Connection failures and 4xx are retried after 60 s, then 300 s repeating."""
    spool, _ = _queue(tmp_path)
    hop = FakeHop(
        OSError("refused"),
        {"bob@branch.example.test": LATER},
        OSError("refused"),
        {"bob@branch.example.test": OK},
    )
    reports = Reports()
    await _drain(_agent(spool, hop, reports))
    assert [round(t) for t, _, _ in hop.calls] == [0, 60, 360, 660]
    assert reports.sent == []
    assert list(spool.scan()) == []


async def test_permanent_failure_reports_once_for_all(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """5xx recipients fail at once; one report covers them all, sent to the sender."""
    spool, _ = _queue(
        tmp_path,
        _recipient("a@branch.example.test", orcpt=("rfc822", "A@Branch.example.test")),
        _recipient("b@branch.example.test"),
        _recipient("c@branch.example.test"),
    )
    replies = {"a@branch.example.test": NO_USER, "b@branch.example.test": NO_USER}
    replies["c@branch.example.test"] = OK
    hop, reports = FakeHop(replies), Reports()
    await _drain(_agent(spool, hop, reports))
    assert [address for address, _ in reports.sent] == ["alice@example.test"]
    per_message, *blocks = reports.blocks(0)
    assert per_message["Original-Envelope-Id"] == "ENV-1"
    assert [b["Final-Recipient"] for b in blocks] == [
        "rfc822;a@branch.example.test",
        "rfc822;b@branch.example.test",
    ]
    assert blocks[0]["Original-Recipient"] == "rfc822;A@Branch.example.test"
    assert blocks[0]["Action"] == "failed"
    assert blocks[0]["Status"] == "5.1.1"
    assert blocks[0]["Remote-MTA"] == "dns; next.example.test"
    assert blocks[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert list(spool.scan()) == []


@pytest.mark.parametrize(
    ("notify", "sender"),
    [(("NEVER",), "alice@example.test"), (("SUCCESS",), "alice@example.test"), (None, "")],
)
async def test_failure_without_report(
    tmp_path: Path, notify: tuple[str, ...] | None, sender: str
) -> None:
    """NOTIFY=NEVER, NOTIFY without FAILURE, and a <> sender all mean no report."""
    spool, _ = _queue(tmp_path, _recipient("b@branch.example.test", notify=notify), sender=sender)
    hop, reports = FakeHop({"b@branch.example.test": NO_USER}), Reports()
    await _drain(_agent(spool, hop, reports))
    assert reports.sent == []
    assert list(spool.scan()) == []


async def test_max_age_fails_with_report(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Still failing at max_age, the message fails (5.4.7) with the last reply as diagnostic."""
    spool, _ = _queue(tmp_path)
    hop, reports = FakeHop({"bob@branch.example.test": LATER}), Reports()
    await _drain(_agent(spool, hop, reports))
    times = [round(t) for t, _, _ in hop.calls]
    assert times[0] == 0
    assert times[-1] == 3600
    (block,) = reports.blocks(0)[1:]
    assert block["Action"] == "failed"
    assert block["Status"] == "5.4.7"
    assert "451 4.3.0 try later" in block["Diagnostic-Code"]


async def test_delay_notice_once_then_delivered(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """NOTIFY=DELAY gives one "delayed" report after delay_notice_after; success adds none."""
    spool, _ = _queue(tmp_path, _recipient("bob@branch.example.test", notify=("DELAY", "FAILURE")))
    script: list[dict[str, HopReply] | OSError] = [OSError("down")] * 5
    hop, reports = FakeHop(*script, {"bob@branch.example.test": OK}), Reports()
    await _drain(_agent(spool, hop, reports))
    assert len(hop.calls) == 6
    assert len(reports.sent) == 1
    (block,) = reports.blocks(0)[1:]
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.1"
    assert "Will-Retry-Until" in block
    assert list(spool.scan()) == []


async def test_no_delay_notice_without_delay(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Without DELAY in NOTIFY, a long delay reports nothing."""
    spool, _ = _queue(tmp_path)
    script: list[dict[str, HopReply] | OSError] = [OSError("down")] * 5
    hop, reports = FakeHop(*script, {"bob@branch.example.test": OK}), Reports()
    await _drain(_agent(spool, hop, reports))
    assert reports.sent == []


@pytest.mark.parametrize(("dsn", "expected"), [(False, 1), (True, 0)])
async def test_relayed_report_only_for_non_dsn_hop(
    tmp_path: Path, dsn: bool, expected: int
) -> None:
    """NOTIFY=SUCCESS to a hop without DSN yields "relayed"; a DSN hop reports itself."""
    spool, _ = _queue(tmp_path, _recipient("bob@branch.example.test", notify=("SUCCESS",)))
    hop, reports = FakeHop({"bob@branch.example.test": OK}, dsn=dsn), Reports()
    await _drain(_agent(spool, hop, reports))
    assert len(reports.sent) == expected
    if expected:
        (block,) = reports.blocks(0)[1:]
        assert block["Action"] == "relayed"
        assert block["Status"] == "2.0.0"


async def test_one_report_per_event(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    """Relayed and failed recipients of one message get one report each, not one per recipient."""
    spool, _ = _queue(
        tmp_path,
        _recipient("a@x.test", notify=("SUCCESS", "FAILURE")),
        _recipient("b@x.test", notify=("SUCCESS", "FAILURE")),
        _recipient("c@x.test", notify=("SUCCESS", "FAILURE")),
    )
    replies = {"a@x.test": OK, "b@x.test": OK, "c@x.test": NO_USER}
    hop, reports = FakeHop(replies), Reports()
    await _drain(_agent(spool, hop, reports))
    actions = sorted(
        (blocks[1]["Action"], len(blocks) - 1)
        for blocks in (reports.blocks(i) for i in range(len(reports.sent)))
    )
    assert actions == [("failed", 1), ("relayed", 2)]


async def test_recipients_grouped_by_hop(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Recipients for different hops go in separate transactions, each hop once."""
    spool, _ = _queue(
        tmp_path,
        _recipient("a@x.test", next_hop="10.0.0.1:25"),
        _recipient("b@y.test", next_hop="10.0.0.2:25"),
        _recipient("c@x.test", next_hop="10.0.0.1:25"),
    )
    hop = FakeHop({"a@x.test": OK, "b@y.test": OK, "c@x.test": OK})
    await _drain(_agent(spool, hop, Reports()))
    assert sorted((h, tuple(a)) for _, h, a in hop.calls) == [
        ("10.0.0.1:25", ("a@x.test", "c@x.test")),
        ("10.0.0.2:25", ("b@y.test",)),
    ]


async def test_delivered_recipient_never_resent(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """After a restart, only recipients not yet recorded as delivered are sent."""
    _queue(tmp_path, _recipient("done@x.test", state="delivered"), _recipient("todo@x.test"))
    hop = FakeHop({"todo@x.test": OK})
    await _drain(_agent(Spool.open(tmp_path, clock=wall_clock), hop, Reports()))
    assert [a for _, _, a in hop.calls] == [["todo@x.test"]]


async def test_owed_report_sent_after_restart(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A report marked owed before a crash is sent at the next start, without resending mail."""
    spool, _ = _queue(
        tmp_path,
        _recipient("b@x.test", state="failed", report_due="failed", status="5.1.1"),
    )
    hop, reports = FakeHop({}), Reports()
    await _drain(_agent(spool, hop, reports))
    assert hop.calls == []
    assert reports.blocks(0)[1]["Action"] == "failed"
    assert list(spool.scan()) == []


async def test_state_recorded_before_report_sink_runs(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """When the hop has accepted, the envelope says so before the report is handed over."""
    spool, _ = _queue(tmp_path, _recipient("b@x.test", notify=("SUCCESS",)))
    seen: list[str] = []

    async def sink(address: str, report: bytes) -> None:
        (envelope,) = spool.scan()
        seen.append(envelope.recipients[0].state)

    agent = DeliveryAgent(
        spool,
        settings=SETTINGS,
        transmit=FakeHop({"b@x.test": OK}),
        report=sink,
        hostname="mx.example.test",
        wall_clock=wall_clock,
        threaded_io=False,
    )
    await _drain(agent)
    assert seen == ["relayed"]


async def test_run_loop_wakes_for_new_mail(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The background loop sleeps on an empty queue and delivers as soon as it is woken."""
    spool = Spool.open(tmp_path, clock=wall_clock)
    hop = FakeHop({"b@x.test": OK})
    agent = _agent(spool, hop, Reports())
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run)
        await trio.sleep(1000)
        spool.enqueue(
            Envelope(
                id="", sender="a@x.test", arrival=wall_clock(), recipients=(_recipient("b@x.test"),)
            ),
            MESSAGE,
        )
        agent.wake()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [round(t) for t, _, _ in hop.calls] == [1000]
    assert list(spool.scan()) == []


# --- ForwardingRouter and ReportRouter ---------------------------------------------------

TRACE = TraceInfo(
    hostname="mx.example.test", peer_ip="192.0.2.7", helo="client.test", protocol="ESMTP"
)
BRANCH = HostPort(host="127.0.0.1", port=2526)
ROUTES = RouteTable(
    forwards=(
        ForwardRoute(
            addresses="*@branch.example.test",
            server=BRANCH,
            verify="minger",
            minger_server=HostPort(host="127.0.0.1", port=4069),
            minger_secret="s" * 20,
        ),
        ForwardRoute(addresses="*@plain.example.test", server=BRANCH),
    ),
    relay=RelaySettings(smarthost=HostPort(host="127.0.0.1", port=2527)),
)


def _router(tmp_path: Path, answers: dict[str, int | None] | None = None) -> ForwardingRouter:
    table = answers or {}

    def factory(route: ForwardRoute) -> MingerLookup:
        async def lookup(address: str) -> int | None:
            return table.get(address)

        return lookup

    return ForwardingRouter(
        ROUTES,
        Spool.open(tmp_path / "spool"),
        hostname="mx.example.test",
        lookup_factory=factory,
        wall_clock=wall_clock,
    )


def test_router_routes() -> None:
    """Forward routes for anyone, the smarthost only for trusted clients, else nothing."""
    router = ForwardingRouter(ROUTES, Spool(Path("/nonexistent")), hostname="mx")
    assert router.route(
        Mailbox(local_part="bob", domain="Branch.Example.Test"), trusted=False
    ) == Route(next_hop="127.0.0.1:2526")
    assert router.route(Mailbox(local_part="x", domain="far.test"), trusted=True) == Route(
        next_hop="127.0.0.1:2527"
    )
    assert router.route(Mailbox(local_part="x", domain="far.test"), trusted=False) is None


async def test_router_verifies_only_minger_routes(tmp_path: Path) -> None:
    """RCPT verification asks Minger for verify="minger" routes only, mapping its answers."""
    router = _router(tmp_path, {"bob@branch.example.test": 5, "gone@branch.example.test": 3})
    assert await router.verify(Mailbox(local_part="bob", domain="branch.example.test")) is None
    refusal = await router.verify(Mailbox(local_part="gone", domain="branch.example.test"))
    assert refusal is not None
    assert (refusal.code, refusal.status, refusal.unknown_local) == (550, "5.1.1", True)
    silent = await router.verify(Mailbox(local_part="who", domain="branch.example.test"))
    assert silent is not None
    assert (silent.code, silent.status, silent.unknown_local) == (451, "4.4.3", False)
    assert await router.verify(Mailbox(local_part="any", domain="plain.example.test")) is None
    assert await router.verify(Mailbox(local_part="any", domain="far.test")) is None


async def test_router_enqueue_keeps_dsn_params(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """enqueue stores the content under our Received line, with ENVID/RET/NOTIFY/ORCPT."""
    router = _router(tmp_path)
    content = ContentSpool(tmp_path)
    await content.write(MESSAGE)
    recipients = [
        RoutedRecipient(address="bob@branch.example.test", route=Route(next_hop="127.0.0.1:2526")),
        RoutedRecipient(address="carol@far.test", route=Route(next_hop="127.0.0.1:2527")),
    ]
    await router.enqueue(
        content,
        "alice@example.test",
        recipients,
        TRACE,
        queue_id="ABCDEF012345",
        mail_params=MailParams(envid="E 1", ret=Ret.HDRS, body=Body.EIGHT_BIT_MIME),
        rcpt_params=[
            RcptParams(
                notify=frozenset({Notify.SUCCESS, Notify.FAILURE}),
                orcpt=OriginalRecipient(addr_type="rfc822", address="Bob@Branch.example.test"),
            ),
            None,
        ],
    )
    await content.aclose()
    (envelope,) = router.spool.scan()
    assert envelope.id == "ABCDEF012345"
    assert (envelope.sender, envelope.envid, envelope.ret, envelope.body) == (
        "alice@example.test",
        "E 1",
        "HDRS",
        "8BITMIME",
    )
    bob, carol = envelope.recipients
    assert bob.notify == ("FAILURE", "SUCCESS")
    assert bob.orcpt == ("rfc822", "Bob@Branch.example.test")
    assert (carol.notify, carol.orcpt, carol.next_hop) == (None, None, "127.0.0.1:2527")
    stored = router.spool.read_message(envelope.id).replace(b"\n", b"\r\n").replace(b"\r\r", b"\r")
    assert stored.startswith(
        b"Received: from client.test ([192.0.2.7])\r\n"
        b"\tby mx.example.test (sansio-smtpd) with ESMTP id ABCDEF012345;\r\n"
    )
    assert stored.endswith(b"\r\n" + MESSAGE)
    assert envelope.size == len(router.spool.read_message(envelope.id))


def _local(local_part: str, domain: str) -> tuple[bool, str | None]:
    if domain.lower() != "example.test":
        return False, None
    return True, {"alice": "alice"}.get(local_part.lower())


def _report_router(tmp_path: Path) -> tuple[ReportRouter, Spool]:
    spool = Spool.open(tmp_path / "spool")
    delivery = MaildirDelivery(tmp_path / "mail", host="mx")
    delivery.prepare(["alice"])
    router = ReportRouter(
        ROUTES,
        spool,
        local=_local,
        delivery=delivery,
        content_dir=tmp_path,
        hostname="mx.example.test",
        wall_clock=wall_clock,
    )
    return router, spool


async def test_report_to_local_sender_lands_in_maildir(tmp_path: Path) -> None:
    """A report for a local sender goes straight into their Maildir, from <>."""
    router, spool = _report_router(tmp_path)
    await router("Alice@example.test", b"Subject: report\r\n\r\nbody\r\n")
    (copy,) = (tmp_path / "mail" / "alice" / "new").iterdir()
    data = copy.read_bytes().replace(b"\r\n", b"\n")
    assert data.startswith(b"Return-Path: <>\n")
    assert data.endswith(b"Subject: report\n\nbody\n")
    assert list(spool.scan()) == []


async def test_report_to_remote_sender_is_queued_on_its_route(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A report for a sender behind a forward route is queued from <> to that route."""
    router, spool = _report_router(tmp_path)
    await router("bob@branch.example.test", b"Subject: report\r\n\r\nbody\r\n")
    await router("someone@far.test", b"Subject: report\r\n\r\nbody\r\n")
    hops = sorted(
        (e.sender, e.recipients[0].address, e.recipients[0].next_hop) for e in spool.scan()
    )
    assert hops == [
        ("", "bob@branch.example.test", "127.0.0.1:2526"),
        ("", "someone@far.test", "127.0.0.1:2527"),
    ]


async def test_report_with_nowhere_to_go_is_dropped(tmp_path: Path) -> None:
    """A report for an unknown local sender, or without any route, is logged and dropped."""
    spool = Spool.open(tmp_path / "spool", clock=wall_clock)
    router = ReportRouter(
        RouteTable(),
        spool,
        local=_local,
        delivery=MaildirDelivery(tmp_path / "mail", host="mx"),
        content_dir=tmp_path,
        hostname="mx.example.test",
    )
    await router("nobody@example.test", b"x\r\n")
    await router("someone@far.test", b"x\r\n")
    assert list(spool.scan()) == []


# --- SmtpTransmitter against real next hops on loopback --------------------------------

DOTTED = b"From: alice@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\nend\r\n"


def _outgoing(*recipients: Recipient, **changes: object) -> Envelope:
    base = Envelope(id="ABC", sender="alice@example.test", arrival=EPOCH, recipients=recipients)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_transmit_passes_dsn_through_and_adds_orcpt() -> None:
    """To a DSN hop: ENVID, RET, NOTIFY pass through; ORCPT is added when absent; content intact."""
    hop = EngineHop()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(hop.serve)
        result = await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{port}",
            _outgoing(
                _recipient(
                    "bob@branch.example.test",
                    notify=("SUCCESS", "FAILURE"),
                    orcpt=("rfc822", "Bob@Branch.example.test"),
                ),
                _recipient("carol@branch.example.test"),
                envid="E 1+x",
                ret="HDRS",
            ),
            [
                _recipient(
                    "bob@branch.example.test",
                    notify=("SUCCESS", "FAILURE"),
                    orcpt=("rfc822", "Bob@Branch.example.test"),
                ),
                _recipient("carol@branch.example.test"),
            ],
            DOTTED,
        )
        nursery.cancel_scope.cancel()
    assert result.dsn
    assert {a: r.code for a, r in result.replies.items()} == {
        "bob@branch.example.test": 250,
        "carol@branch.example.test": 250,
    }
    (seen,) = hop.transactions
    assert seen.sender == "alice@example.test"
    assert seen.mail_params is not None
    assert (seen.mail_params.envid, seen.mail_params.ret) == ("E 1+x", Ret.HDRS)
    assert seen.mail_params.size == len(DOTTED)
    assert [address for address, _ in seen.recipients] == [
        "bob@branch.example.test",
        "carol@branch.example.test",
    ]
    (_, bob_params), (_, carol_params) = seen.recipients
    assert bob_params.notify == frozenset({Notify.SUCCESS, Notify.FAILURE})
    assert bob_params.orcpt == OriginalRecipient(
        addr_type="rfc822", address="Bob@Branch.example.test"
    )
    assert carol_params.notify is None
    assert carol_params.orcpt == OriginalRecipient(
        addr_type="rfc822", address="carol@branch.example.test"
    )
    assert seen.content == DOTTED


@pytest.mark.slow
async def test_transmit_reports_each_rcpt_refusal() -> None:
    """A refused RCPT is reported with its reply; the others still get the message."""
    hop = EngineHop(reject={"gone@x.test": Reject(code=550, status="5.1.1", text="no such user")})
    async with trio.open_nursery() as nursery:
        port = await nursery.start(hop.serve)
        group = [_recipient("gone@x.test"), _recipient("here@x.test")]
        result = await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{port}", _outgoing(*group), group, MESSAGE
        )
        nursery.cancel_scope.cancel()
    assert result.replies["gone@x.test"].diagnostic == "550 5.1.1 no such user"
    assert result.replies["here@x.test"].code == 250
    assert [r for r, _ in hop.transactions[0].recipients] == ["here@x.test"]


@pytest.mark.slow
@pytest.mark.parametrize("pipelining", [True, False])
async def test_transmit_all_refused_sends_no_content(pipelining: bool) -> None:
    """When every RCPT is refused, no message is delivered, pipelined or not."""
    refuse = Reject(code=550, status="5.1.1", text="no such user")
    hop = EngineHop(reject={"a@x.test": refuse, "b@x.test": refuse}, pipelining=pipelining)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(hop.serve)
        group = [_recipient("a@x.test"), _recipient("b@x.test")]
        result = await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{port}", _outgoing(*group), group, MESSAGE
        )
        nursery.cancel_scope.cancel()
    assert {r.code for r in result.replies.values()} == {550}
    assert hop.transactions == []


@pytest.mark.slow
async def test_transmit_refuses_smtputf8_to_hop_without_it() -> None:
    """A message needing SMTPUTF8 fails 5.6.7 at a hop that lacks it (RFC 6531 §3.2)."""
    hop = EngineHop(smtputf8=False)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(hop.serve)
        group = [_recipient("bob@x.test")]
        result = await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{port}", _outgoing(*group, smtputf8=True), group, MESSAGE
        )
        nursery.cancel_scope.cancel()
    assert result.replies["bob@x.test"].status == "5.6.7"
    assert hop.transactions == []


@pytest.mark.slow
async def test_transmit_bdat_for_binarymime() -> None:
    """BINARYMIME content goes with BDAT, byte for byte (bare CR and LF kept)."""
    hop = EngineHop()
    body = b"Subject: bin\r\n\r\n\x00\x01 bare\rcr bare\nlf\r\n.\r\n"
    async with trio.open_nursery() as nursery:
        port = await nursery.start(hop.serve)
        group = [_recipient("bob@x.test")]
        result = await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{port}", _outgoing(*group, body="BINARYMIME"), group, body
        )
        nursery.cancel_scope.cancel()
    assert result.replies["bob@x.test"].code == 250
    assert hop.transactions[0].content == body


async def test_transmit_connection_refused_raises() -> None:
    """No listener means OSError, which the agent turns into a retry."""
    group = [_recipient("bob@x.test")]
    with pytest.raises(OSError, match="connect"):
        await SmtpTransmitter(hostname="mx.example.test")(
            f"127.0.0.1:{free_port()}", _outgoing(*group), group, MESSAGE
        )


@pytest.mark.slow
async def test_down_then_up_arrives_after_retry(tmp_path: Path) -> None:
    """aiosmtpd as the next hop: down at first, up later; the retry delivers the message once."""
    now = [EPOCH]
    hop = AiosmtpdHop()
    spool = Spool.open(tmp_path)
    spool.enqueue(
        Envelope(
            id="",
            sender="alice@example.test",
            arrival=EPOCH,
            recipients=(
                Recipient(
                    address="bob@branch.example.test",
                    next_hop=f"127.0.0.1:{hop.port}",
                    notify=("SUCCESS",),
                ),
            ),
        ),
        MESSAGE,
    )
    reports = Reports()
    agent = DeliveryAgent(
        spool,
        settings=SETTINGS,
        transmit=SmtpTransmitter(hostname="mx.example.test"),
        report=reports,
        hostname="mx.example.test",
        wall_clock=lambda: now[0],
    )
    assert await agent.run_due() == EPOCH + 60
    (waiting,) = spool.scan()
    assert waiting.recipients[0].status == "4.4.1"
    await trio.to_thread.run_sync(hop.start)
    try:
        now[0] += 30
        assert await agent.run_due() == EPOCH + 60  # not due yet: nothing sent
        assert hop.messages == []
        now[0] += 30
        assert await agent.run_due() is None
    finally:
        await trio.to_thread.run_sync(hop.stop)
    ((sender, rcpts, content),) = hop.messages
    assert (sender, rcpts) == ("alice@example.test", ["bob@branch.example.test"])
    assert content == MESSAGE
    # aiosmtpd offers no DSN, so NOTIFY=SUCCESS is answered by us: "relayed".
    (block,) = reports.blocks(0)[1:]
    assert block["Action"] == "relayed"
    assert block["Remote-MTA"] == "dns; 127.0.0.1"


class _Content:
    """Received content as the connection keeps it (LF line ends, as for Maildir)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def copy_to(self, fd: int) -> None:
        os.write(fd, self.data)


@pytest.mark.parametrize(
    ("notify", "sender", "expected"),
    [
        (frozenset({Notify.SUCCESS}), "alice@example.test", 1),
        (frozenset({Notify.FAILURE}), "alice@example.test", 0),
        (None, "alice@example.test", 0),
        (frozenset({Notify.SUCCESS}), "", 0),
    ],
)
async def test_delivered_locally_reports_success(
    tmp_path: Path, notify: frozenset[Notify] | None, sender: str, expected: int
) -> None:
    """Local delivery with NOTIFY=SUCCESS yields one "delivered" report (never for <>)."""
    router = _router(tmp_path)
    reports = Reports()
    router.reports = reports
    params = RcptParams(
        notify=notify, orcpt=OriginalRecipient(addr_type="rfc822", address="Bob@example.test")
    )
    await router.delivered_locally(
        _Content(MESSAGE.replace(b"\r\n", b"\n")),
        sender,
        [("bob@example.test", params), ("carol@example.test", params)],
        TRACE,
        mail_params=MailParams(envid="E9"),
    )
    assert len(reports.sent) == expected
    if expected:
        per_message, *blocks = reports.blocks(0)
        assert per_message["Original-Envelope-Id"] == "E9"
        assert [b["Action"] for b in blocks] == ["delivered", "delivered"]
        assert blocks[0]["Original-Recipient"] == "rfc822;Bob@example.test"
        returned = reports.sent[0][1].get_payload(2)
        assert isinstance(returned, Message)
        assert returned.get_content_type() == "text/rfc822-headers"


async def test_one_broken_message_does_not_stop_the_loop(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """An unexpected error on one message is logged; the others are still delivered."""
    spool, broken = _queue(tmp_path, _recipient("a@x.test"))
    spool.enqueue(
        Envelope(id="", sender="s@x.test", arrival=EPOCH, recipients=(_recipient("b@x.test"),)),
        MESSAGE,
    )
    spool.message_path(broken.id).unlink()  # its content vanished: reading it fails
    hop = FakeHop({"b@x.test": OK})
    next_due = await _agent(spool, hop, Reports()).run_due()
    assert [a for _, _, a in hop.calls] == [["b@x.test"]]
    assert next_due == pytest.approx(EPOCH + 60)
    assert [e.id for e in spool.scan()] == [broken.id]


_REPLIES = {"ok": OK, "later": LATER, "no": NO_USER}
_step = st.none() | st.lists(st.sampled_from(sorted(_REPLIES)), min_size=3, max_size=3)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.lists(_step, max_size=12),
    notify=st.lists(
        st.none() | st.sets(st.sampled_from(["SUCCESS", "FAILURE", "DELAY"]), min_size=1),
        min_size=3,
        max_size=3,
    ),
)
async def test_loop_invariants(
    autojump_clock: trio.testing.MockClock,
    tmp_path_factory: pytest.TempPathFactory,
    script: list[list[str] | None],
    notify: list[set[str] | None],
) -> None:
    """Any mix of outages, 4xx, 5xx and 2xx: the queue drains, nobody is sent to after
    being settled, and each recipient is in at most one report per action."""
    addresses = ["a@x.test", "b@x.test", "c@x.test"]
    spool, _ = _queue(
        tmp_path_factory.mktemp("spool"),
        *(
            _recipient(a, notify=None if n is None else tuple(sorted(n)))
            for a, n in zip(addresses, notify, strict=True)
        ),
    )
    steps: list[dict[str, HopReply] | OSError] = [
        OSError("down")
        if step is None
        else {a: _REPLIES[k] for a, k in zip(addresses, step, strict=True)}
        for step in script
    ]
    hop, reports = FakeHop(*steps, dict.fromkeys(addresses, OK)), Reports()
    await _drain(_agent(spool, hop, reports), limit=100)
    assert list(spool.scan()) == []
    settled: set[str] = set()
    for (_, _, asked), step in zip(hop.calls, [*steps, *[None] * len(hop.calls)], strict=False):
        assert not settled & set(asked)
        if isinstance(step, dict):
            settled |= {a for a in asked if step[a].code != 451}
    seen: dict[str, list[str]] = {}
    for index in range(len(reports.sent)):
        blocks = reports.blocks(index)[1:]
        assert len({b["Action"] for b in blocks}) == 1
        for block in blocks:
            seen.setdefault(block["Action"], []).append(block["Final-Recipient"])
    for finals in seen.values():
        assert len(finals) == len(set(finals))
