"""Loading sansio-smtpd's TOML configuration: values, defaults and one-line errors."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from trio_server.__main__ import main
from trio_server.config import ConfigError, ListenAddress, load_config
from trio_server.passwords import hash_password

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "smtpd.toml"

FULL = """
[server]
hostname = "mx.example.test"
listen = ["127.0.0.1:2525", "[::1]:2526"]
max_message_size = 1000000
max_recipients = 50
max_connections = 7
command_timeout = 30
data_timeout = 60.5
local_networks = ["10.0.0.0/8"]
spool_dir = "spool"
bare_newlines = "normalize"

[smtp]
refuse_helo_containing = [".myisp.com"]
dsn = false
forbid_percent_in_address = false
forbid_bang_in_address = false
add_missing_date_header = false
add_original_recipients_header = true
original_recipients_header = "Delivered-To"
log_rejected_recipients = true
rejected_recipients_log = "log/bad.log"

[local]
domains = ["Example.TEST"]
maildir_root = "mail"
[local.mailboxes]
alice = ["alice", "a.smith"]
bob = ["bob"]
"""


def write(tmp_path: Path, text: str, name: str = "smtpd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def test_example_file_loads() -> None:
    """examples/smtpd.toml (what `make run` uses) is valid and has alice and bob."""
    config = load_config(EXAMPLE)
    assert config.server.listen == (ListenAddress(host="127.0.0.1", port=2525),)
    assert config.local.mailbox_for("a.smith") == "alice"
    assert config.local.mailbox_for("bob") == "bob"
    assert config.local.maildir_root == ROOT / "var" / "mail"


def test_every_key_is_read(tmp_path: Path) -> None:
    """Each key of the issue's file lands in the dataclass tree, paths next to the file."""
    config = load_config(write(tmp_path, FULL))
    server, smtp, local = config.server, config.smtp, config.local
    assert server.hostname == "mx.example.test"
    assert server.listen[1] == ListenAddress(host="::1", port=2526)
    assert str(server.listen[1]) == "[::1]:2526"
    assert (server.max_message_size, server.max_recipients, server.max_connections) == (
        1000000,
        50,
        7,
    )
    assert (server.command_timeout, server.data_timeout) == (30.0, 60.5)
    assert server.local_networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert server.spool_dir == tmp_path / "spool"
    assert server.bare_newlines == "normalize"
    assert smtp.refuse_helo_containing == (".myisp.com",)
    assert not (smtp.dsn)
    assert not (smtp.forbid_percent_in_address)
    assert not (smtp.forbid_bang_in_address)
    assert not smtp.add_missing_date_header
    assert smtp.add_original_recipients_header
    assert smtp.original_recipients_header == "Delivered-To"
    assert smtp.log_rejected_recipients
    assert smtp.rejected_recipients_log == tmp_path / "log" / "bad.log"
    assert local.is_local_domain("example.test")
    assert local.is_local_domain("EXAMPLE.test.")
    assert local.maildir_root == tmp_path / "mail"
    assert local.mailbox_for("A.Smith") == "alice"
    assert local.mailbox_for("carol") is None
    assert config.tls is None


def test_defaults_for_an_empty_file(tmp_path: Path) -> None:
    """An empty file is valid: documented defaults, no TLS, no local domains."""
    config = load_config(write(tmp_path, ""))
    assert config.server.max_message_size == 10_485_760
    assert config.server.command_timeout == 300.0
    assert config.smtp.dsn
    assert config.smtp.add_missing_date_header
    assert not config.smtp.add_original_recipients_header
    assert config.local.domains == frozenset()
    assert config.server.spool_dir == tmp_path / "var" / "spool"


def test_max_message_size_zero_means_unlimited(tmp_path: Path) -> None:
    """max_message_size = 0 turns the limit off (Postfix's convention)."""
    config = load_config(write(tmp_path, "[server]\nmax_message_size = 0\n"))
    assert config.server.max_message_size is None


def test_tls_files_are_checked(tmp_path: Path) -> None:
    """[tls] names files that must exist; the error names the key and the path."""
    error = error_for(tmp_path, '[tls]\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n')
    assert error.key == "tls.certificate"
    assert "does not exist" in error.message


def test_passwords_must_be_hashes(tmp_path: Path) -> None:
    """[local.passwords] accepts only strings made by hash-password."""
    good = hash_password("s3cret", log_n=4)
    config = load_config(write(tmp_path, f'[local.passwords]\nalice = "{good}"\n'))
    assert config.local.passwords == {"alice": good}
    error = error_for(tmp_path, '[local.passwords]\nalice = "plain-text"\n')
    assert error.key == "local.passwords.alice"
    assert "hash-password" in error.message


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[server]\nmax_recipients = "100"\n', "server.max_recipients", "expected an integer"),
        ("[server]\nmax_connections = true\n", "server.max_connections", "got boolean"),
        ("[server]\ncommand_timeout = 0\n", "server.command_timeout", "positive number"),
        ('[server]\nlisten = "127.0.0.1:25"\n', "server.listen", "list of strings"),
        ('[server]\nlisten = ["localhost"]\n', "server.listen[0]", "host:port"),
        ('[server]\nlisten = ["127.0.0.1:99999"]\n', "server.listen[0]", "0 to 65535"),
        ('[server]\nlisten = ["[nonsense]:25"]\n', "server.listen[0]", "IPv6"),
        ("[server]\nlisten = []\n", "server.listen", "at least one"),
        ('[server]\nlocal_networks = ["10.0.0.1/8"]\n', "server.local_networks[0]", "network"),
        ('[server]\nlocal_networks = ["banana"]\n', "server.local_networks[0]", "network"),
        ('[server]\nbare_newlines = "fix"\n', "server.bare_newlines", '"normalize"'),
        ('[server]\nhostname = "a b"\n', "server.hostname", "without spaces"),
        ("[server]\nport = 25\n", "server.port", "unknown key"),
        ("colour = 1\n", "colour", "unknown key"),
        ("[smtp]\ndsn = 1\n", "smtp.dsn", "true or false"),
        ('[smtp]\nrefuse_helo_containing = [""]\n', "smtp.refuse_helo_containing", "non-empty"),
        ('[smtp]\noriginal_recipients_header = "X To"\n', "smtp.original_recipients_header", ""),
        ("[smtp]\nrejected_recipients_log = 5\n", "smtp.rejected_recipients_log", "a string"),
        ('[local]\ndomains = ["bad domain"]\n', "local.domains[0]", "domain name"),
        ('[local.mailboxes]\n"../etc" = ["x"]\n', "local.mailboxes.../etc", "folder name"),
        ('[local.mailboxes]\na = ["x"]\nb = ["X"]\n', "local.mailboxes.b", "already delivered"),
        ('[local.mailboxes]\na = ["x@y"]\n', "local.mailboxes.a", "without '@'"),
        ("[local]\nmailboxes = 3\n", "local.mailboxes", "a table"),
        ("server = 3\n", "server", "a table"),
        ('[[forward]]\naddresses = "*@b.test"\n', "forward[0].server", "host:port"),
        ('[relay]\nsmarthost = "nowhere"\n', "relay.smarthost", "host:port"),
        ("[queue]\nmax_age = -1\n", "queue.max_age", "positive"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    """Every bad value raises one line: FILE: KEY: what was expected."""
    error = error_for(tmp_path, text)
    assert error.key == key
    assert expected in error.message
    assert str(error).startswith(f"{tmp_path / 'smtpd.toml'}: {key}: ")


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_toml_syntax_error(tmp_path: Path) -> None:
    """A TOML syntax error names the file and the line."""
    error = error_for(tmp_path, "[server\n")
    assert "not valid TOML" in error.message
    assert "line 1" in error.message


def test_forward_relay_queue_are_validated_and_kept(tmp_path: Path) -> None:
    """[[forward]], [relay] and [queue] are accepted, parsed by trio_server.routes."""
    text = (
        '[[forward]]\naddresses = "*@branch.test"\nserver = "127.0.0.1:2526"\n'
        '[relay]\nsmarthost = "127.0.0.1:2527"\n[queue]\nmax_age = 60\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.routes.forwards[0].server.port == 2526
    assert config.routes.relay.smarthost is not None
    assert config.queue.max_age == 60


def test_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check on a good file prints ok and exits 0."""
    assert main(["--config", str(EXAMPLE), "--check"]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[server]\nmax_recipients = "many"\n', "server.max_recipients: expected an integer"),
        ("[server]\nlistn = []\n", "server.listn: unknown key"),
        ('[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n', "tls.certificate: expected"),
    ],
)
def test_check_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    """--check on a bad file exits 2 with one line on stderr, no traceback."""
    path = write(tmp_path, text)
    assert main(["--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert needle in err
    assert str(path) in err


def test_check_bad_tls_material(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check loads the certificate and key, so garbage PEM files are caught too."""
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    path = write(tmp_path, '[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n')
    assert main(["--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "tls: cannot load the certificate and key" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_command_line_exit_status(tmp_path: Path) -> None:
    """The real entry point: missing file and bad type exit 2, one line, no traceback."""
    bad = write(tmp_path, "[server]\nmax_connections = 1.5\n")
    for path in (tmp_path / "missing.toml", bad):
        result = subprocess.run(
            [sys.executable, "-m", "trio_server", "--config", str(path), "--check"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1
        assert str(path) in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("minger = 3\n", "expected a table"),
        ('[minger]\nlisten = "127.0.0.1:0"\nallow_anonymous = true\ncolour = 1\n', "colour"),
        ('[minger]\nlisten = "127.0.0.1:0"\n', "secret"),
    ],
)
def test_minger_table_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    """[minger] problems come out as 'FILE: minger: ...' naming the bad key."""
    error = error_for(tmp_path, text)
    assert error.key == "minger"
    assert expected in error.message
