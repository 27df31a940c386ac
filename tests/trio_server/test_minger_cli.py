"""Tests for trio_server.minger_cli: the sansio-minger command."""

from __future__ import annotations

import io
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from minger import Status
from trio_server.minger_cli import EXIT_NO_ANSWER, EXIT_USAGE, main
from trio_server.minger_service import MingerSettings, make_directory, serve_minger

SECRET = "0123456789abcdef"

directory = make_directory(
    is_local_domain=lambda domain: domain.lower() == "example.test",
    mailbox_for=lambda local: {"alice": "alice", "bob": "bob"}.get(local.lower()),
    disabled_mailboxes={"bob"},
)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file holding the shared secret and a newline, as an editor saves it."""
    path = tmp_path / "minger.secret"
    path.write_text(SECRET + "\n", encoding="ascii")
    return path


async def run_main(argv: list[str]) -> int:
    """Run main(argv) in a worker thread (it calls trio.run itself)."""
    return await trio.to_thread.run_sync(partial(main, argv))


async def start_server(nursery: trio.Nursery) -> str:
    """Start the Minger service on loopback; return its HOST:PORT text."""
    settings = MingerSettings(listen=("127.0.0.1", 0), secret=SECRET, allow_anonymous=False)
    host, port = await nursery.start(serve_minger, settings, directory)
    return f"{host}:{port}"


@pytest.mark.parametrize(
    ("mailbox", "code", "line"),
    [
        ("alice@example.test", 5, "alice@example.test 5 ACTIVE: address exists and is active"),
        (
            "bob@example.test",
            4,
            "bob@example.test 4 DISABLED: address exists but cannot receive mail",
        ),
        ("carol@example.test", 3, "carol@example.test 3 NOT_FOUND: address does not exist"),
    ],
)
async def test_query_prints_status_and_exits_with_it(
    mailbox: str, code: int, line: str, secret_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """query prints 'ADDRESS CODE NAME: meaning' and exits with the status code."""
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery)
        argv = ["query", mailbox, "--server", server, "--secret-file", str(secret_file)]
        assert await run_main(argv) == code
        nursery.cancel_scope.cancel()
    assert capsys.readouterr().out == line + "\n"


async def test_query_without_secret_is_anonymous(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --secret-file the query is anonymous; this server answers 2, exit 2."""
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery)
        assert await run_main(["query", "alice@example.test", "--server", server]) == 2
        nursery.cancel_scope.cancel()
    assert "2 BAD_CREDENTIALS" in capsys.readouterr().out


async def test_query_timeout_exits_10(
    secret_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A silent server exits 10 with a message on stderr, never a status."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(("127.0.0.1", 0))
        host, port = silent.getsockname()
        argv = ["query", "alice@example.test", "--server", f"{host}:{port}"]
        code = await run_main([*argv, "--timeout", "0.2", "--secret-file", str(secret_file)])
    assert code == EXIT_NO_ANSWER == 10
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no Minger answer" in captured.err
    assert code not in {int(s) for s in Status}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["query"],
        ["query", "alice@example.test"],
        ["query", "not-an-address", "--server", "127.0.0.1:4069"],
        ["query", "alice@example.test", "--server", "127.0.0.1:99999"],
        ["query", "alice@example.test", "--server", "127.0.0.1:0"],
        ["query", "alice@example.test", "--server", "127.0.0.1", "--timeout", "0"],
        ["query", "alice@example.test", "--server", "127.0.0.1", "--secret-file", "/nonexistent"],
        ["frobnicate"],
        ["digest"],
    ],
)
def test_usage_errors_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad usage or input exits 64 (not argparse's 2, which would read as a status)."""
    assert main(argv) == EXIT_USAGE == 64
    assert "sansio-minger: error:" in capsys.readouterr().err


def test_invalid_secret_file_exits_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret file holding a space-containing secret is refused without echoing it."""
    path = tmp_path / "bad.secret"
    path.write_text("two words\n", encoding="ascii")
    argv = ["query", "alice@example.test", "--server", "127.0.0.1", "--secret-file", str(path)]
    assert main(argv) == EXIT_USAGE
    assert "two words" not in capsys.readouterr().err


def test_digest_from_secret_file(secret_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """digest prints the notes' vector for arvel@example.com (notes §6)."""
    assert main(["digest", "arvel@example.com", "--secret-file", str(secret_file)]) == 0
    assert capsys.readouterr().out == "A7E/WJtlUbO5NWDjZba+bw==\n"


def test_digest_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --secret-file, digest reads the secret from standard input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("ThisIsMySharedSecret\n"))
    assert main(["digest", "bob@example.com"]) == 0
    assert capsys.readouterr().out == "th1zAk2f/HgxK6No3RIkuw==\n"


def test_digest_bad_address_exits_64(secret_file: Path) -> None:
    """An address that cannot be queried has no digest: exit 64."""
    assert main(["digest", "two words@example.com", "--secret-file", str(secret_file)]) == 64


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints usage and exits 0, naming the exit codes."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "10 on timeout" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_digest() -> None:
    """The installed sansio-minger script works as a separate process."""
    script = Path(sys.executable).parent / "sansio-minger"
    result = subprocess.run(
        [str(script), "digest", "arvel@example.com", "--secret-file", "-"],
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "A7E/WJtlUbO5NWDjZba+bw==\n"
