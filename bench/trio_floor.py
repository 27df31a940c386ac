"""A bench-only floor: Trio with canned SMTP replies and no engine, to price the I/O layer.

Run as `python bench/trio_floor.py --port N`. Each connection gets "220", then "250" for
every command line, "354" for DATA, "250" when CRLF.CRLF ends the content and "221" for
QUIT. It checks nothing, so it is not an SMTP server: it is the cost of Trio's
accept / receive_some / send_all per connection and per command, the part of
sansio-smtpd's time that no engine optimisation can remove.
"""

from __future__ import annotations

import argparse
import signal
from functools import partial

import trio

_READ_SIZE = 65536
_END = b"\r\n.\r\n"


async def handle(stream: trio.SocketStream) -> None:
    """Answer one connection with canned replies until QUIT or EOF."""
    buf = b""
    in_data = fresh = False
    try:
        async with stream:
            await stream.send_all(b"220 floor ESMTP\r\n")
            # Bounded by the peer: every turn reads, and EOF ends the loop.
            while True:
                chunk = await stream.receive_some(_READ_SIZE)
                if not chunk:
                    return
                buf += chunk
                out = []
                while buf:
                    if in_data:
                        # The DATA line's CRLF counts towards the marker, once; after
                        # that keep the last 4 bytes: the marker may straddle two reads.
                        if fresh:
                            buf = b"\r\n" + buf
                            fresh = False
                        end = buf.find(_END)
                        if end < 0:
                            buf = buf[-4:]
                            break
                        buf = buf[end + 5 :]
                        in_data = False
                        out.append(b"250 2.0.0 Ok\r\n")
                        continue
                    line_end = buf.find(b"\n")
                    if line_end < 0:
                        break
                    verb = buf[:4].upper()
                    buf = buf[line_end + 1 :]
                    if verb == b"DATA":
                        in_data = fresh = True
                        out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    elif verb == b"QUIT":
                        out.append(b"221 2.0.0 Bye\r\n")
                        await stream.send_all(b"".join(out))
                        return
                    else:
                        out.append(b"250 2.0.0 Ok\r\n")
                if out:
                    await stream.send_all(b"".join(out))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:port until SIGTERM / SIGINT."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            serve_tcp = partial(trio.serve_tcp, host="127.0.0.1", backlog=256)
            await nursery.start(serve_tcp, handle, port)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    trio.run(serve, parser.parse_args().port)


if __name__ == "__main__":
    main()
