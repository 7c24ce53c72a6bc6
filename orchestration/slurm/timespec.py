"""Slurm's time limits (`--time`) in seconds, and the warning lead that follows from one."""

from __future__ import annotations

import re

from .errors import SlurmError

# sbatch(1), --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
# "days-hours:minutes" and "days-hours:minutes:seconds"
_WITH_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$")
_WITHOUT_DAYS = re.compile(r"^(\d+)(?::(\d+))?(?::(\d+))?$")
MAX_LEAD_S = 300  # the default lead: at most 5 minutes...
LEAD_SHARE = 4  # ...and at most a quarter of the limit
SIGNAL_MAX_S = 65535  # sbatch --signal's largest time


def parse_time(text: str) -> int:
    """Seconds in a Slurm time limit; refused when it is not one of sbatch's formats or is
    unlimited (a job without a limit needs no warning)."""
    value = text.strip()
    if value.lower() in ("infinite", "unlimited", "-1"):
        raise SlurmError(f"--time {text!r}: give a finite limit (the warning is timed from it)")
    days_match = _WITH_DAYS.match(value)
    if days_match:
        days, hours, minutes, seconds = (int(part or 0) for part in days_match.groups())
        total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    else:
        match = _WITHOUT_DAYS.match(value)
        if not match:
            raise SlurmError(
                f"--time {text!r}: not a Slurm time limit (MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, "
                "DAYS-HOURS, DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS)"
            )
        parts = [int(part) for part in match.groups() if part is not None]
        if len(parts) == 1:
            total = parts[0] * 60
        elif len(parts) == 2:
            total = parts[0] * 60 + parts[1]
        else:
            total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if total <= 0:
        raise SlurmError(f"--time {text!r}: must be longer than 0")
    return total


def format_seconds(seconds: int) -> str:
    """D-HH:MM:SS (days only when there are some), as squeue writes a time."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def default_lead(limit_s: int | None) -> int:
    """The warning's lead when --signal-lead is not given: the smaller of 300 s and a quarter
    of the limit (300 s when the limit is the partition's, unknown here)."""
    if limit_s is None:
        return MAX_LEAD_S
    return max(1, min(MAX_LEAD_S, limit_s // LEAD_SHARE))


def check_lead(lead_s: int, limit_s: int | None) -> None:
    """A lead Slurm can honour and that leaves the job time to run."""
    if lead_s < 1:
        raise SlurmError(f"--signal-lead {lead_s}: must be at least 1 second")
    if lead_s > SIGNAL_MAX_S:
        raise SlurmError(f"--signal-lead {lead_s}: sbatch --signal takes at most {SIGNAL_MAX_S} seconds")
    if limit_s is not None and lead_s >= limit_s:
        raise SlurmError(
            f"--signal-lead {lead_s}: must be shorter than --time ({limit_s} s), or the job is warned before it starts"
        )
