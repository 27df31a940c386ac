"""Which servers are measured end to end, and the order the runs happen in.

Runs go profile by profile and, inside a profile, server by server, so that a burst of
noise from other work on the machine falls on neighbouring servers alike and the ratios
(measured in the same run) stay fair.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import e2e, stacks

__all__ = ["available_targets", "run_e2e"]

# Profiled with py-spy after the measured runs: (target key, profile name).
_PROFILED = (
    ("ours-discard", "small"),
    ("ours-discard", "reuse"),
    ("ours-discard", "large"),
    ("ours-maildir", "small"),
    ("ours-maildir", "large"),
)


def _ours_discard() -> tuple[e2e.Target | None, str]:
    try:
        import sansio_smtp
    except Exception as exc:
        return None, f"sansio_smtp is not importable: {type(exc).__name__}: {exc}"

    missing = [
        name
        for name in ("ServerConnection", "ServerConfig", "Greeting", "Accept", "NEED_DATA")
        if not hasattr(sansio_smtp, name)
    ]
    if missing:
        return None, "the engine does not export " + ", ".join(missing) + " yet"
    return e2e.TRIO_SINK, ""


def _ours_maildir() -> tuple[e2e.Target | None, str]:
    script = Path(sys.executable).parent / "sansio-smtpd"
    if not script.exists():
        return None, f"{script} is not installed"
    work = e2e.WORK_DIR / "check"
    work.mkdir(parents=True, exist_ok=True)
    e2e.smtpd_config(e2e.free_port(), work)
    done = subprocess.run(
        [*e2e.OURS_MAILDIR.command(0, work), "--check"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        return None, "sansio-smtpd --check failed: " + (tail[-1] if tail else "")
    return e2e.OURS_MAILDIR, ""


def available_targets() -> tuple[list[e2e.Target], dict[str, str]]:
    """The targets that can run on this checkout, and why any others cannot."""
    found = [e2e.TRIO_FLOOR, e2e.AIOSMTPD_DISCARD, e2e.AIOSMTPD_MAILDIR, e2e.SMTP_SINK_TARGET]
    skipped: dict[str, str] = {}
    ours, why = _ours_discard()
    if ours is None:
        skipped["ours-discard"] = why
    else:
        found.insert(0, ours)
        found.insert(1, e2e.TRIO_RAW_SINK)
        found.insert(2, e2e.ASYNCIO_SINK)
    maildir, why = _ours_maildir()
    if maildir is None:
        skipped["ours-maildir"] = why
    else:
        found.insert(1 if ours is not None else 0, maildir)
    return found, skipped


def _shown_command(target: e2e.Target) -> str:
    """The server's command line as RESULTS.md shows it (port and folders elided)."""
    work = e2e.WORK_DIR / target.key
    argv = target.command(25250, work)
    text = " ".join(argv).replace("25250", "PORT").replace(str(work), "WORK")
    text = text.replace(sys.executable, "python").replace(str(e2e.BENCH_DIR), "bench")
    return text.replace(str(Path(sys.executable).parent), ".venv/bin")


def run_e2e(
    *, factor: float, reps: int, only: set[str], py_spy: Path | None, budget: float
) -> dict[str, object]:
    """Run every profile against every available target; plain data for the report."""
    found, skipped = available_targets()
    if only:
        found = [t for t in found if t.key in only]
    profiles = [p.scaled(factor) if factor != 1.0 else p for p in e2e.PROFILES]
    outcomes: list[e2e.Outcome] = []
    for profile in profiles:
        for target in found:
            outcomes.append(e2e.run_target(target, profile, reps, budget))
    idle: dict[str, float | None] = {}
    for target in found:
        idle[target.key] = e2e.idle_connection_cost(target)
    spied: dict[str, str] = {}
    if py_spy is not None:
        by_key = {t.key: t for t in found}
        by_name = {p.name: p for p in profiles}
        out_dir = e2e.WORK_DIR / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        for key, name in _PROFILED:
            if key not in by_key:
                continue
            raw = out_dir / f"{key}-{name}.txt"
            profile = by_name[name]
            rates = [
                run.msgs_per_s
                for o in outcomes
                if o.target == key and o.profile == name
                for run in o.runs
            ]
            if rates:
                profile = e2e.fit_to_budget(profile, min(rates), budget / 2)
            error = e2e.profile_server(by_key[key], profile, py_spy, raw)
            spied[f"{key} {name} (m={profile.messages})"] = error or stacks.summarise(raw, top=20)
    return {
        "profiles": [
            {"name": p.name, "command": p.describe(), "messages": p.messages, "length": p.length}
            for p in profiles
        ],
        "budget_seconds": budget,
        "targets": [
            {
                "key": t.key,
                "title": t.title,
                "mode": t.mode,
                "note": t.note,
                "command": _shown_command(t),
            }
            for t in found
        ],
        "skipped": skipped,
        "outcomes": [o.to_json() for o in outcomes],
        "idle_kib_per_connection": idle,
        "py_spy": spied,
    }
