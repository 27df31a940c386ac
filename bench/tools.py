"""Set-up of the outside tools the suite needs, on a fresh machine.

- Postfix's smtp-source (the load generator) and smtp-sink (the C ceiling), from the
  Debian package `postfix`, installed with the "No configuration" preseed so no mail
  system is set up; the postfix daemon is then stopped and disabled, so nothing is left
  bound to port 25.
- A bench-only venv (bench/work/venv) holding the sampling profiler py-spy. They
  are bench tools, never runtime or test dependencies of the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["BENCH_VENV", "SMTP_SINK", "SMTP_SOURCE", "ensure_bench_venv", "ensure_postfix_tools"]

SMTP_SOURCE = Path("/usr/sbin/smtp-source")
SMTP_SINK = Path("/usr/sbin/smtp-sink")
BENCH_VENV = Path(__file__).resolve().parent / "work" / "venv"
# Pinned so that two runs of the suite profile with the same tools.
BENCH_REQUIREMENTS = ("py-spy==0.4.3",)
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _log(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def _run(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> int:
    _log("$ " + " ".join(argv))
    return subprocess.run(argv, env=env, check=check).returncode


def ensure_postfix_tools() -> None:
    """Install the `postfix` package if smtp-source/smtp-sink are missing; stop its daemon.

    Raises:
        RuntimeError: the tools are still missing after the install.
    """
    if not (SMTP_SOURCE.exists() and SMTP_SINK.exists()):
        if os.geteuid() != 0:
            raise RuntimeError("smtp-source is missing and installing postfix needs root")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        preseed = (
            "postfix postfix/main_mailer_type select No configuration\n"
            "postfix postfix/mailname string localhost\n"
        )
        _log("preseeding debconf: postfix/main_mailer_type = No configuration")
        subprocess.run(["debconf-set-selections"], input=preseed.encode(), check=True)
        # A policy-rc.d that answers 101 forbids maintainer scripts to start daemons;
        # put one in place for the install only, unless the machine already has one.
        own_policy = not _POLICY_RC.exists()
        if own_policy:
            _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
            _POLICY_RC.chmod(0o755)
        try:
            _run(["apt-get", "update", "-q"], env=env)
            _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"], env=env)
        finally:
            if own_policy:
                _POLICY_RC.unlink()
    if not (SMTP_SOURCE.exists() and SMTP_SINK.exists()):
        raise RuntimeError(f"{SMTP_SOURCE} / {SMTP_SINK} missing after installing postfix")
    stop_postfix_daemon()


def stop_postfix_daemon() -> None:
    """Make sure the Postfix mail system is neither running nor started at boot."""
    postfix = shutil.which("postfix") or "/usr/sbin/postfix"
    if Path(postfix).exists():
        status = subprocess.run([postfix, "status"], capture_output=True, check=False).returncode
        if status == 0:
            _run([postfix, "stop"], check=False)
    # Disable both ways: systemctl edits the unit links even when systemd is not running.
    if shutil.which("systemctl"):
        running = Path("/run/systemd/system").is_dir()
        argv = ["systemctl", "disable", *(["--now"] if running else []), "postfix"]
        subprocess.run(argv, capture_output=True, check=False)
    if shutil.which("update-rc.d") and Path("/etc/init.d/postfix").exists():
        subprocess.run(["update-rc.d", "postfix", "disable"], capture_output=True, check=False)


def ensure_bench_venv() -> Path:
    """Create bench/work/venv with the profiler when it is missing; return its bin folder."""
    bin_dir = BENCH_VENV / "bin"
    stamp = BENCH_VENV / ".installed"
    wanted = "\n".join(BENCH_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return bin_dir
    if not (bin_dir / "python").exists():
        _run([sys.executable, "-m", "venv", str(BENCH_VENV)])
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *BENCH_REQUIREMENTS])
    stamp.write_text(wanted)
    return bin_dir


if __name__ == "__main__":
    ensure_postfix_tools()
    ensure_bench_venv()
