"""``sansio-minger``: ask a Minger server about an address, or print a query digest.

Usage::

    sansio-minger query ADDRESS --server HOST[:PORT] [--secret-file FILE]
                        [--timeout SECONDS] [--retries N]
    sansio-minger digest ADDRESS [--secret-file FILE]

``query`` prints ``ADDRESS CODE NAME: meaning`` and exits with the status code itself
(0 to 5, draft-hathcock-minger-06 §3.1), so scripts can branch on it. Other exit codes:

- 10: no answer within the timeout (never confused with a status);
- 64: bad usage or input (unknown option, invalid address or secret, unreadable file).

``digest`` prints the ``d=`` value (-06 §2.2) an admin needs when wiring up MDaemon or
VPOP3. The secret is read from ``--secret-file`` (``-`` for standard input), or without
that option from standard input (prompted for without echo on a terminal). Secrets never
appear on the command line, where other local users could read them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import NoReturn

import trio

import minger

from .minger_client import DEFAULT_RETRIES, DEFAULT_TIMEOUT, MingerClientError, verify
from .minger_service import parse_host_port

__all__ = ["EXIT_NO_ANSWER", "EXIT_USAGE", "main"]

#: Exit code when the server did not answer in time (distinct from every status, 0-5).
EXIT_NO_ANSWER = 10
#: Exit code for bad usage or input (sysexits.h EX_USAGE).
EXIT_USAGE = 64


#: The ``--secret-file`` value that means standard input.
_STDIN = "-"


class _UsageError(Exception):
    """Bad command line or input; reported with exit code 64."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on a usage error, which would read as status 2.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self.format_usage())


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="sansio-minger",
        description="Minger (draft-hathcock-minger-06) address verification client.",
        epilog="query exits with the status code (0-5), 10 on timeout, 64 on bad input.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    query = commands.add_parser("query", help="ask a Minger server whether an address exists")
    query.add_argument("address", help="the mailbox to verify, e.g. alice@example.test")
    query.add_argument(
        "--server", required=True, help="HOST[:PORT] of the Minger server (port 4069 if omitted)"
    )
    query.add_argument(
        "--secret-file",
        metavar="FILE",
        help="file holding the shared secret ('-' for stdin); without it the query is anonymous",
    )
    query.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"total time to wait, retries included (default {DEFAULT_TIMEOUT:g})",
    )
    query.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"retransmissions after the first query (default {DEFAULT_RETRIES})",
    )
    digest = commands.add_parser("digest", help="print the d= digest for an address")
    digest.add_argument("address", help="the mailbox exactly as it will be queried")
    digest.add_argument(
        "--secret-file", metavar="FILE", help="file holding the shared secret (default: stdin)"
    )
    return parser


def _read_secret(secret_file: str | None, *, prompt: bool) -> str:
    """Read the secret from a file, or from standard input when the file is '-' or None."""
    try:
        if secret_file is None or secret_file == _STDIN:
            if prompt and secret_file is None and sys.stdin.isatty():
                text = getpass.getpass("Minger shared secret: ")
            else:
                text = sys.stdin.readline()
        else:
            with open(secret_file, encoding="ascii") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise _UsageError(f"cannot read the secret: {error}") from None
    # A secret holds no whitespace (-06 §2.1 VCHAR), so this only drops the newline.
    secret = text.strip()
    try:
        return minger.validate_secret(secret)
    except minger.MingerError as error:
        raise _UsageError(str(error)) from None


def _query(args: argparse.Namespace) -> int:
    try:
        host, port = parse_host_port(args.server)
    except ValueError as error:
        raise _UsageError(f"--server: {error}") from None
    if port == 0:
        raise _UsageError("--server: port 0 is not a destination")
    if not (args.timeout > 0 and args.retries >= 0):
        raise _UsageError("--timeout must be positive and --retries at least 0")
    secret = None if args.secret_file is None else _read_secret(args.secret_file, prompt=False)
    try:
        minger.make_query(args.address, secret=secret)
    except minger.MingerError as error:
        raise _UsageError(str(error)) from None
    try:
        status = trio.run(
            lambda: verify(
                args.address,
                (host, port),
                secret,
                timeout=args.timeout,
                retries=args.retries,
            )
        )
    except MingerClientError as error:
        print(f"sansio-minger: {error}", file=sys.stderr)
        return EXIT_NO_ANSWER
    print(f"{args.address} {int(status)} {status.name}: {status.description}")
    return int(status)


def _digest(args: argparse.Namespace) -> int:
    secret = _read_secret(args.secret_file, prompt=True)
    try:
        print(minger.compute_digest(secret, minger.validate_mailbox(args.address)))
    except minger.MingerError as error:
        raise _UsageError(str(error)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``sansio-minger``; returns the exit code (see the module docstring).

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The status code for ``query``, 0 for ``digest``, 10 on timeout, 64 on bad input.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        return _query(args) if args.command == "query" else _digest(args)
    except _UsageError as error:
        sys.stderr.write(error.usage)
        print(f"sansio-minger: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
