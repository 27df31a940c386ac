"""The "pipelined" load profile: a small client that sends each whole transaction in one write.

Run as `python bench/pipeline_client.py --port N --sessions 20 --messages 5000 --length 10240`.
Each session connects once, says EHLO, then for each of its messages writes
MAIL FROM, RCPT TO, DATA, the body and the final dot in a single write, and reads the four
replies (250, 250, 354, 250). This goes further than RFC 2920 §3.1 (which has the client
wait for 354 before the body): it is the most a pipelining client can push, and every
server here takes it. Prints one JSON line: messages, seconds, and the client's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

_MAX_LINE = 1024


def make_body(length: int) -> bytes:
    """A message of about `length` payload bytes in 80-byte CRLF lines, dot-stuffed, ended."""
    header = b"From: <bench@example.test>\r\nTo: <alice@example.test>\r\nSubject: bench\r\n\r\n"
    line = b"X" * 78 + b"\r\n"
    lines, rest = divmod(length, len(line))
    return header + line * lines + b"Y" * rest + b"\r\n.\r\n"


async def read_reply(reader: asyncio.StreamReader) -> int:
    """Read one (possibly multi-line) reply; return its code."""
    for _ in range(64):
        line = await reader.readline()
        if len(line) < 4:
            raise ConnectionError(f"short reply line {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])
    raise ConnectionError("reply longer than 64 lines")


async def expect(reader: asyncio.StreamReader, wanted: int) -> None:
    """Read a reply and fail unless it has the wanted code."""
    code = await read_reply(reader)
    if code != wanted:
        raise ConnectionError(f"expected {wanted}, got {code}")


async def session(port: int, count: int, transaction: bytes) -> None:
    """One connection sending `count` transactions, each in one write."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=_MAX_LINE * 64)
    try:
        await expect(reader, 220)
        writer.write(b"EHLO client.bench\r\n")
        await expect(reader, 250)
        for _ in range(count):
            writer.write(transaction)
            await expect(reader, 250)
            await expect(reader, 250)
            await expect(reader, 354)
            await expect(reader, 250)
        writer.write(b"QUIT\r\n")
        await expect(reader, 221)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def run(port: int, sessions: int, messages: int, length: int) -> float:
    """Spread `messages` over `sessions` parallel sessions; return the elapsed seconds."""
    transaction = (
        b"MAIL FROM:<bench@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        + make_body(length)
    )
    share, extra = divmod(messages, sessions)
    counts = [share + (1 if i < extra else 0) for i in range(sessions)]
    start = time.perf_counter()
    async with asyncio.timeout(600):
        await asyncio.gather(*(session(port, n, transaction) for n in counts if n))
    return time.perf_counter() - start


def main() -> None:
    """Parse the command line, run the load, print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--length", type=int, default=10240)
    args = parser.parse_args()
    cpu0 = time.process_time()
    try:
        seconds = asyncio.run(run(args.port, args.sessions, args.messages, args.length))
    except (ConnectionError, TimeoutError, OSError) as exc:
        print(f"pipeline_client: {exc}", file=sys.stderr)
        sys.exit(1)
    result = {
        "messages": args.messages,
        "seconds": seconds,
        "client_cpu_seconds": time.process_time() - cpu0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
