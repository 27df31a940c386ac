"""The example servers run on loopback and take mail from smtplib."""

from __future__ import annotations

import pathlib
import smtplib
import subprocess
import sys
from collections.abc import Iterator

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(params=["blocking_server.py", "asyncio_server.py"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Start an example on 127.0.0.1 with --port 0; yield the process and its port."""
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / request.param), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:3] == ["listening", "on", "127.0.0.1"]
        yield proc, int(first[3])
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
def test_example_accepts_mail_from_smtplib(server: tuple[subprocess.Popen[str], int]) -> None:
    """smtplib sends two messages; the example prints each envelope and size."""
    proc, port = server
    body = "Subject: hello\r\n\r\n.leading dot\r\nbye\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        code, text = client.ehlo("client.test")
        assert code == 250
        assert b"PIPELINING" in text
        assert b"STARTTLS" not in text
        refused = client.sendmail("a@example.org", ["b@example.net", "c@any.test"], body)
        assert refused == {}
        client.sendmail("<>", ["postmaster@x.test"], b"x\r\n")
    assert proc.stdout is not None
    expected_size = len(body.encode())
    assert proc.stdout.readline().strip() == (
        f"message from <a@example.org> to <b@example.net>, <c@any.test>: {expected_size} bytes"
    )
    assert proc.stdout.readline().strip() == "message from <> to <postmaster@x.test>: 3 bytes"
