"""The VPOP3 "SMTP Advanced" options, each on and off, judged by the Maildir and the logs."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from trio_server.config import Config

from .conftest import PASSWORD, messages, start, write_config

# Real clients over 127.0.0.1 (smtplib in a thread).
pytestmark = pytest.mark.slow

T = TypeVar("T")

NO_DATE = "Subject: no date\r\nFrom: s@remote.test\r\n\r\nbody\r\n"
WITH_DATE = "Subject: dated\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n"


async def run_session(
    nursery: trio.Nursery,
    tmp_path: Path,
    script: Callable[[smtplib.SMTP], T],
    **config: Any,
) -> tuple[Config, T]:
    """Start a server with ``config`` and run ``script(smtp_client)`` in a thread."""
    loaded = write_config(tmp_path, **config)
    _, port = await start(nursery, loaded)

    def run() -> T:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            return script(client)

    return loaded, await trio.to_thread.run_sync(run)


# ------------------------------------------------------------ refuse_helo_containing


@pytest.mark.parametrize("enabled", [True, False])
async def test_refuse_helo_containing(
    tmp_path: Path, nursery: trio.Nursery, enabled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A HELO containing a listed text (any case) gets 554 5.7.1 and no mail is accepted."""
    caplog.set_level(logging.INFO)

    def script(client: smtplib.SMTP) -> tuple[int, int]:
        helo, _ = client.ehlo("dsl-42.Pool.MyISP.com")
        mail, _ = client.mail("s@remote.test")
        if mail == 250:
            client.rcpt("alice@example.test")
            client.data(NO_DATE)
        return helo, mail

    config, (helo, mail) = await run_session(
        nursery,
        tmp_path,
        script,
        smtp={"refuse_helo_containing": [".myisp.com"] if enabled else []},
    )
    if enabled:
        assert helo == 554
        assert mail in (503, 554)
        assert messages(config, "alice") == []
        assert 'reject command="EHLO" arg="dsl-42.Pool.MyISP.com" reply="554' in caplog.text
    else:
        assert (helo, mail) == (250, 250)
        assert len(messages(config, "alice")) == 1


# ----------------------------------------------------------------------------- dsn


@pytest.mark.parametrize("enabled", [True, False])
async def test_dsn_switch(tmp_path: Path, nursery: trio.Nursery, enabled: bool) -> None:
    """dsn = false: no DSN keyword, and RET/ENVID/NOTIFY/ORCPT get 555 5.5.4."""

    def script(client: smtplib.SMTP) -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
        client.ehlo("client.test")
        offered = client.has_extn("dsn")
        mail = client.docmd("MAIL", "FROM:<s@remote.test> RET=HDRS ENVID=abc")
        if mail[0] != 250:
            client.docmd("MAIL", "FROM:<s@remote.test>")
        rcpt = client.docmd("RCPT", "TO:<alice@example.test> NOTIFY=SUCCESS")
        return offered, mail, rcpt

    _, (offered, mail, rcpt) = await run_session(nursery, tmp_path, script, smtp={"dsn": enabled})
    assert offered is enabled
    if enabled:
        assert mail[0] == rcpt[0] == 250
    else:
        assert mail[0] == rcpt[0] == 555
        assert mail[1].startswith(b"5.5.4")
        assert rcpt[1].startswith(b"5.5.4")


# -------------------------------------------------- forbid % and ! in local parts


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize(
    ("key", "address"),
    [
        ("forbid_percent_in_address", "bob%elsewhere.test@example.test"),
        ("forbid_bang_in_address", "elsewhere.test!bob@example.test"),
    ],
)
async def test_forbid_source_routing_characters(
    tmp_path: Path, nursery: trio.Nursery, enabled: bool, key: str, address: str
) -> None:
    """On: % or ! in the RCPT local part gets 553 5.1.3. Off: it is an ordinary (unknown) user."""

    def script(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo("client.test")
        client.mail("s@remote.test")
        return client.rcpt(address)

    _, (code, text) = await run_session(nursery, tmp_path, script, smtp={key: enabled})
    if enabled:
        assert (code, text[:5]) == (553, b"5.1.3")
    else:
        assert (code, text[:5]) == (550, b"5.1.1")


# ---------------------------------------------------------- add_missing_date_header


def send(body: str) -> Callable[[smtplib.SMTP], None]:
    def script(client: smtplib.SMTP) -> None:
        client.sendmail("s@remote.test", ["alice@example.test"], body)

    return script


@pytest.mark.parametrize(
    ("enabled", "networks", "body", "dates"),
    [
        (True, ["127.0.0.0/8"], NO_DATE, 1),  # local network, no Date: one is added
        (True, ["127.0.0.0/8"], WITH_DATE, 1),  # already there: left alone
        (True, ["10.0.0.0/8"], NO_DATE, 0),  # from elsewhere: left as it came
        (False, ["127.0.0.0/8"], NO_DATE, 0),  # option off
    ],
)
async def test_add_missing_date_header(
    tmp_path: Path,
    nursery: trio.Nursery,
    enabled: bool,
    networks: list[str],
    body: str,
    dates: int,
) -> None:
    """Date: is added only when on, missing, and the client is in local_networks."""
    config, _ = await run_session(
        nursery,
        tmp_path,
        send(body),
        server={"local_networks": networks},
        smtp={"add_missing_date_header": enabled},
    )
    (message,) = messages(config, "alice")
    assert len(message.get_all("Date", [])) == dates
    if body == WITH_DATE:
        assert message["Date"] == "Mon, 01 Jan 2024 00:00:00 +0000"
    elif dates:
        assert message["Date"].datetime is not None


async def test_date_added_for_authenticated_outsider(
    tmp_path: Path,
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
    client_ssl: ssl.SSLContext,
    alice_hash: str,
) -> None:
    """A client outside local_networks that authenticated counts as ours: Date: added."""

    def script(client: smtplib.SMTP) -> None:
        client.starttls(context=client_ssl)
        client.login("alice", PASSWORD)
        client.sendmail("alice@example.test", ["alice@example.test"], NO_DATE)

    config, _ = await run_session(
        nursery,
        tmp_path,
        script,
        server={"local_networks": ["10.0.0.0/8"]},
        tls=tls_files,
        passwords={"alice": alice_hash},
    )
    (message,) = messages(config, "alice")
    assert message["Date"] is not None


# -------------------------------------------------- add_original_recipients_header


@pytest.mark.parametrize("enabled", [True, False])
async def test_original_recipients_header(
    tmp_path: Path, nursery: trio.Nursery, enabled: bool
) -> None:
    """On: one line per RCPT delivered into that mailbox, exactly as given; nothing else."""

    def script(client: smtplib.SMTP) -> None:
        client.sendmail(
            "s@remote.test",
            ["Alice@EXAMPLE.test", "a.smith@example.test", "bob@example.test"],
            NO_DATE,
        )

    config, _ = await run_session(
        nursery,
        tmp_path,
        script,
        smtp={
            "add_original_recipients_header": enabled,
            "original_recipients_header": "Delivered-To",
        },
    )
    (alice,) = messages(config, "alice")
    (bob,) = messages(config, "bob")
    if enabled:
        assert alice.get_all("Delivered-To") == ["Alice@EXAMPLE.test", "a.smith@example.test"]
        assert bob.get_all("Delivered-To") == ["bob@example.test"]
    else:
        assert alice.get_all("Delivered-To") is None
        assert bob.get_all("Delivered-To") is None
    assert "bob" not in str(alice).lower()  # never reveals the other recipient
    assert "alice" not in str(bob).lower()
    assert "smith" not in str(bob).lower()


# --------------------------------------------------------- log_rejected_recipients


@pytest.mark.parametrize("enabled", [True, False])
async def test_log_rejected_recipients(
    tmp_path: Path, nursery: trio.Nursery, enabled: bool
) -> None:
    """On: one line per unknown local recipient with time, IP, HELO, sender, address, reply."""

    def script(client: smtplib.SMTP) -> None:
        client.ehlo("client.example")
        client.mail("sender@remote.test")
        client.rcpt("nobody@example.test")
        client.rcpt("alice@example.test")
        client.rcpt('"odd\\\\name"@example.test')
        client.rcpt("someone@elsewhere.test")  # relay refusal: not an unknown local user
        client.rset()

    config, _ = await run_session(
        nursery, tmp_path, script, smtp={"log_rejected_recipients": enabled}
    )
    path = config.smtp.rejected_recipients_log
    if not enabled:
        assert not path.exists()
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = lines[0].split("\t")
    assert first[0].endswith("Z")
    assert first[1:5] == [
        "127.0.0.1",
        "client.example",
        "<sender@remote.test>",
        "nobody@example.test",
    ]
    assert first[5].startswith("550 5.1.1 <nobody@example.test>")
    second = lines[1].split("\t")
    # RCPT TO:<"odd\\name"@example.test>: quotes and backslashes escaped, one field.
    assert second[4] == r"\"odd\\\\name\"@example.test"
    assert len(second) == 6
