"""End-to-end benchmarks on loopback: each server started here on a free port, then loaded.

Load comes from Postfix's smtp-source (profiles small, reuse, large) and from
bench/pipeline_client.py (profile pipelined). For each (server, profile) one server process
is started, warmed up with a tenth of the load, then measured `reps` times. Per run:
messages/s and MB/s from the client's wall time, the server's CPU microseconds per message
from /proc/<pid>/stat, and its peak RSS (VmHWM, reset before each run). Servers that deliver
to Maildir are checked to have delivered every message, then their Maildir is emptied.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import procstat
from bench.tools import SMTP_SINK, SMTP_SOURCE

__all__ = [
    "PROFILES",
    "Profile",
    "Run",
    "Server",
    "Target",
    "free_port",
    "idle_connection_cost",
    "profile_server",
    "run_target",
]

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / "work"
SENDER = "bench@example.test"
RECIPIENT = "alice@example.test"
SESSIONS = 20


@dataclass(frozen=True, slots=True)
class Profile:
    """One load shape: how many messages of what size, over which kind of sessions."""

    name: str
    messages: int
    length: int
    reuse: bool = False
    pipelined: bool = False
    sessions: int = SESSIONS

    def scaled(self, factor: float) -> Profile:
        """The same profile with the message count scaled (at least one per session)."""
        count = max(self.sessions, int(self.messages * factor))
        return Profile(self.name, count, self.length, self.reuse, self.pipelined, self.sessions)

    def command(self, port: int) -> list[str]:
        """The client command line for this profile against 127.0.0.1:port."""
        if self.pipelined:
            return [
                sys.executable,
                str(BENCH_DIR / "pipeline_client.py"),
                f"--port={port}",
                f"--sessions={self.sessions}",
                f"--messages={self.messages}",
                f"--length={self.length}",
            ]
        argv = [str(SMTP_SOURCE), "-4", "-s", str(self.sessions), "-m", str(self.messages)]
        argv += ["-l", str(self.length), "-r", "1", "-f", SENDER, "-t", RECIPIENT]
        argv += ["-M", "client.bench"]
        if self.reuse:
            argv.append("-d")
        return [*argv, f"inet:127.0.0.1:{port}"]

    def describe(self) -> str:
        """The command as it reads in RESULTS.md (port elided)."""
        if self.pipelined:
            return (
                f"bench/pipeline_client.py --sessions {self.sessions} "
                f"--messages {self.messages} --length {self.length}"
            )
        reuse = " -d" if self.reuse else ""
        return f"smtp-source -s {self.sessions} -m {self.messages} -l {self.length} -r 1{reuse}"


PROFILES = (
    Profile("small", 5000, 10240),
    Profile("reuse", 5000, 10240, reuse=True),
    Profile("large", 200, 1048576),
    Profile("pipelined", 2000, 10240, pipelined=True),
)


@dataclass(frozen=True, slots=True)
class Target:
    """A server under test and how to start it.

    Attributes:
        key: short name used in tables ("ours-discard", "aiosmtpd-maildir", ...).
        title: what it is, for RESULTS.md.
        mode: "discard" or "maildir".
        command: builds the argv from (port, work folder).
        maildir: where delivered messages land, given the work folder (None: discards).
        note: a caveat printed under the tables.
    """

    key: str
    title: str
    mode: str
    command: Callable[[int, Path], list[str]]
    maildir: Callable[[Path], Path] | None = None
    note: str = ""
    prepare: Callable[[int, Path], None] | None = None


@dataclass(slots=True)
class Run:
    """One measured run."""

    messages: int
    seconds: float
    msgs_per_s: float
    mb_per_s: float
    cpu_us_per_msg: float
    peak_rss_kib: int
    sys_share: float = 0.0
    client_cpu_seconds: float | None = None


@dataclass(slots=True)
class Outcome:
    """All runs of one target under one profile (or the reason there are none)."""

    target: str
    profile: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        """Plain data for results.json."""
        return asdict(self)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log(text: str) -> None:
    print(f"[bench] {text}", flush=True)


class Server:
    """A running server process under test."""

    def __init__(self, target: Target, work: Path) -> None:
        self.target = target
        self.work = work
        self.port = free_port()
        if target.prepare is not None:
            target.prepare(self.port, work)
        self.log_path = work / f"{target.key}.log"
        self._log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            target.command(self.port, work),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        self._wait_ready()

    @property
    def pid(self) -> int:
        """The server's process id (the process whose CPU and memory are measured)."""
        return self.proc.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.key} exited at start-up; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.target.key} did not greet within 30 s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _delivered(maildir: Path) -> int:
    new = maildir / "new"
    return sum(1 for _ in new.iterdir()) if new.is_dir() else 0


def _empty_maildir(maildir: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        folder = maildir / sub
        if folder.is_dir():
            for entry in folder.iterdir():
                entry.unlink()


def _drive(server: Server, profile: Profile) -> tuple[float, float | None]:
    """Run the client once; return (wall seconds, client CPU seconds if it reported them)."""
    argv = profile.command(server.port)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=900, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-600:]
        raise RuntimeError(f"client failed ({done.returncode}): {tail}")
    if profile.pipelined:
        report = json.loads(done.stdout)
        return float(report["seconds"]), float(report["client_cpu_seconds"])
    return seconds, None


def _one_run(server: Server, profile: Profile) -> Run:
    maildir = server.target.maildir(server.work) if server.target.maildir else None
    if maildir is not None:
        _empty_maildir(maildir)
    procstat.reset_peak_rss(server.pid)
    user0, sys0 = procstat.cpu_split(server.pid)
    seconds, client_cpu = _drive(server, profile)
    user1, sys1 = procstat.cpu_split(server.pid)
    cpu = (user1 - user0) + (sys1 - sys0)
    peak = procstat.memory_kib(server.pid)["VmHWM"]
    if maildir is not None:
        got = _delivered(maildir)
        if got != profile.messages:
            raise RuntimeError(f"{profile.messages} messages sent, {got} in {maildir}/new")
        _empty_maildir(maildir)
    return Run(
        messages=profile.messages,
        seconds=seconds,
        msgs_per_s=profile.messages / seconds,
        mb_per_s=profile.messages * profile.length / seconds / 1e6,
        cpu_us_per_msg=cpu / profile.messages * 1e6,
        sys_share=(sys1 - sys0) / cpu if cpu > 0 else 0.0,
        peak_rss_kib=peak,
        client_cpu_seconds=client_cpu,
    )


def fit_to_budget(profile: Profile, rate: float, seconds: float) -> Profile:
    """The profile with its message count cut so one run takes about `seconds` at `rate`.

    Never raised; never below two messages per session; a multiple of the session count.
    """
    if rate <= 0 or profile.messages / rate <= seconds:
        return profile
    per_session = max(2, int(rate * seconds) // profile.sessions)
    count = min(profile.messages, per_session * profile.sessions)
    return Profile(
        profile.name, count, profile.length, profile.reuse, profile.pipelined, profile.sessions
    )


def run_target(target: Target, profile: Profile, reps: int, budget: float) -> Outcome:
    """Start the target, warm it up, measure `reps` runs of the profile, stop it.

    A server too slow to finish the profile's message count within about `budget`
    seconds per run (judged from the warm-up) gets a smaller count, recorded per run.
    """
    outcome = Outcome(target.key, profile.name)
    work = WORK_DIR / target.key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with Server(target, work) as server:
            warm = _one_run(server, profile.scaled(0.1))
            # The warm-up runs cold, so its rate is a low estimate: the cut is generous.
            profile = fit_to_budget(profile, warm.msgs_per_s, budget)
            for i in range(reps):
                run = _one_run(server, profile)
                _log(
                    f"{target.key:18} {profile.name:9} run {i + 1}/{reps} m={profile.messages}: "
                    f"{run.msgs_per_s:9.0f} msg/s {run.mb_per_s:8.1f} MB/s "
                    f"{run.cpu_us_per_msg:8.0f} us/msg {run.peak_rss_kib:7} KiB peak"
                )
                outcome.runs.append(run)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        outcome.error = str(exc)
        _log(f"{target.key} {profile.name}: FAILED: {exc}")
    return outcome


def profile_server(
    target: Target, profile: Profile, py_spy: Path, out: Path, rate: int = 200
) -> str | None:
    """Run the profile once under py-spy (raw collapsed stacks to `out`); None when it worked."""
    work = WORK_DIR / target.key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with Server(target, work) as server:
            spy = subprocess.Popen(
                [
                    *(str(py_spy), "record", "--gil", "--pid", str(server.pid)),
                    *("--rate", str(rate)),
                    *("--format", "raw", "--output", str(out)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # let py-spy attach before the load starts
            try:
                _drive(server, profile)
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if out.exists() else "py-spy wrote nothing"


def idle_connection_cost(target: Target, connections: int = 200) -> float | None:
    """Server RSS growth per idle connection (greeted, after EHLO), in KiB."""
    work = WORK_DIR / target.key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with Server(target, work) as server:
            socks: list[socket.socket] = []
            try:
                # Warm the server's per-connection paths once so lazily built state
                # (imports, caches) does not count against the idle connections.
                _idle_round(server.port, socks, 10)
                for s in socks:
                    s.close()
                socks.clear()
                time.sleep(0.3)
                before = procstat.memory_kib(server.pid)["VmRSS"]
                _idle_round(server.port, socks, connections)
                time.sleep(0.5)
                after = procstat.memory_kib(server.pid)["VmRSS"]
            finally:
                for s in socks:
                    s.close()
    except (RuntimeError, OSError) as exc:
        _log(f"{target.key} idle: FAILED: {exc}")
        return None
    return (after - before) / connections


def _idle_round(port: int, socks: list[socket.socket], count: int) -> None:
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        _read_reply(s)
        s.sendall(b"EHLO idle.bench\r\n")
        _read_reply(s)


def _read_reply(s: socket.socket) -> bytes:
    data = b""
    for _ in range(100):
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("server closed the connection")
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if data.endswith(b"\r\n") and last[3:4] == b" ":
            return data
    raise OSError("reply never ended")


# --- the targets -------------------------------------------------------------------------


def _python() -> str:
    return sys.executable


def _aiosmtpd(mode: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, work: Path) -> list[str]:
        argv = [_python(), str(BENCH_DIR / "aiosmtpd_server.py"), f"--port={port}"]
        argv.append(f"--mode={mode}")
        if mode == "maildir":
            argv.append(f"--maildir={work / 'Maildir'}")
        return argv

    return command


def _smtp_sink(port: int, work: Path) -> list[str]:
    # -u: smtp-sink refuses to keep root privileges; it drops to nobody after binding.
    return [str(SMTP_SINK), "-u", "nobody", f"inet:127.0.0.1:{port}", "256"]


def _trio_sink(port: int, work: Path) -> list[str]:
    return [_python(), str(BENCH_DIR / "trio_sink.py"), f"--port={port}"]


AIOSMTPD_DISCARD = Target(
    "aiosmtpd-discard",
    "aiosmtpd 1.4.6, handler returns 250 and drops the message",
    "discard",
    _aiosmtpd("discard"),
)
AIOSMTPD_MAILDIR = Target(
    "aiosmtpd-maildir",
    "aiosmtpd 1.4.6, handler writes Maildir tmp/, fsync, rename to new/, fsync new/",
    "maildir",
    _aiosmtpd("maildir"),
    maildir=lambda work: work / "Maildir",
)
SMTP_SINK_TARGET = Target(
    "smtp-sink", "Postfix smtp-sink (C, one process, discards)", "discard", _smtp_sink
)
TRIO_SINK = Target(
    "ours-discard",
    "sansio_smtp engine + Trio, accept and discard (bench/trio_sink.py)",
    "discard",
    _trio_sink,
    note="bench/trio_sink.py: bench-only server driving the engine on Trio like sansio-smtpd",
)


def smtpd_config(port: int, work: Path) -> None:
    # A bench-only sansio-smtpd configuration (issue 3's format): one local mailbox on a
    # real disk, so delivery pays for its fsyncs; limits raised for 20 parallel sessions.
    (work / "smtpd.toml").write_text(
        "[server]\n"
        'hostname = "mx.bench.test"\n'
        f'listen = ["127.0.0.1:{port}"]\n'
        "max_connections = 1000\n"
        "max_message_size = 10485760\n"
        'spool_dir = "spool"\n'
        "\n[local]\n"
        'domains = ["example.test"]\n'
        'maildir_root = "mail"\n'
        "\n[local.mailboxes]\n"
        'alice = ["alice"]\n'
    )


def _smtpd(port: int, work: Path) -> list[str]:
    script = Path(sys.executable).parent / "sansio-smtpd"
    return [str(script), "--config", str(work / "smtpd.toml")]


OURS_MAILDIR = Target(
    "ours-maildir",
    "sansio-smtpd (src/trio_server) delivering to Maildir: tmp/, fsync, new/, fsync dir",
    "maildir",
    _smtpd,
    maildir=lambda work: work / "mail" / "alice",
    note="config written by bench/e2e.py smtpd_config(): one local mailbox, defaults otherwise",
    prepare=smtpd_config,
)


def _trio_floor(port: int, work: Path) -> list[str]:
    return [_python(), str(BENCH_DIR / "trio_floor.py"), f"--port={port}"]


TRIO_FLOOR = Target(
    "trio-floor",
    "Trio with canned replies and no engine (bench/trio_floor.py): the I/O layer's floor",
    "discard",
    _trio_floor,
    note="not an SMTP server; prices Trio's accept/receive/send per connection and command",
)


def _asyncio_sink(port: int, work: Path) -> list[str]:
    return [_python(), str(BENCH_DIR / "asyncio_sink.py"), f"--port={port}"]


ASYNCIO_SINK = Target(
    "engine-asyncio",
    "sansio_smtp engine under an asyncio.Protocol, accept and discard (bench/asyncio_sink.py)",
    "discard",
    _asyncio_sink,
    note="bench-only: the same engine on aiosmtpd's event loop, without Trio",
)


def _trio_raw_sink(port: int, work: Path) -> list[str]:
    return [_python(), str(BENCH_DIR / "trio_raw_sink.py"), f"--port={port}"]


TRIO_RAW_SINK = Target(
    "engine-trio-lowlevel",
    "sansio_smtp engine on Trio's low-level waits over plain sockets (bench/trio_raw_sink.py)",
    "discard",
    _trio_raw_sink,
    note="bench-only: like ours-discard without SocketStream; send/recv tried before waiting",
)
