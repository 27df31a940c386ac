"""aiosmtpd 1.4.6 as a benchmark peer: accept everything, then discard it or deliver to Maildir.

Run as `python bench/aiosmtpd_server.py --port N --mode discard|maildir [--maildir DIR]`.
The server runs on the main thread's asyncio loop (not aiosmtpd's Controller thread), so
the process does nothing but serve. The Maildir handler does what a straightforward
aiosmtpd user would write: a blocking write to tmp/, fsync, rename into new/, fsync of
new/, then 250, all inside the async handler.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

_counter = itertools.count()


class DiscardHandler:
    """Accept every message and throw it away."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok: discarded"


class MaildirHandler:
    """Write each message into one Maildir, durably, before answering 250."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._new_fd = os.open(root / "new", os.O_RDONLY | os.O_DIRECTORY)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{os.getpid()}.{next(_counter)}.bench"
        tmp = self.root / "tmp" / name
        content: bytes = envelope.original_content or envelope.content
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.root / "new" / name)
        os.fsync(self._new_fd)
        return "250 2.0.0 Ok: delivered"


def main() -> None:
    """Parse the command line and serve until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("discard", "maildir"), required=True)
    parser.add_argument("--maildir", type=Path)
    args = parser.parse_args()
    handler: DiscardHandler | MaildirHandler
    if args.mode == "maildir":
        if args.maildir is None:
            parser.error("--mode maildir needs --maildir")
        handler = MaildirHandler(args.maildir)
    else:
        handler = DiscardHandler()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.bench", ident="aiosmtpd bench"),
            host="127.0.0.1",
            port=args.port,
            backlog=256,
        )
        async with server:
            await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
