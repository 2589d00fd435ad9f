"""Lock contenders as real `kvnode lock` processes, and the check of what they did.

Each contender runs `kvnode lock --ttl T NAME -- sh holder.sh ...`: the command
appends a `start` line when it begins its critical section and an `end` line
when it leaves it (also when SIGTERM stops it), with the wall-clock time, its
fencing token and its pid, to one shared file. `check_sections` then says
whether two critical sections ever overlapped in real time and whether the
fencing tokens grew with each new holder: mutual exclusion as a user sees it,
not as the lock's own bookkeeping says.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTIONS_LOG = "sections.log"
# The critical section: record the start, hold until RELEASE exists (or for SECONDS),
# record the end. A SIGTERM (from kvnode lock, which forwards or loses) ends it early.
HOLDER_SCRIPT = """\
log=$1; name=$2; mode=$3; arg=$4
now() { date +%s.%N; }
echo "start $name $KVNODE_FENCING_TOKEN $(now) $$" >> "$log"
trap 'echo "end $name $KVNODE_FENCING_TOKEN $(now) $$" >> "$log"; exit 143' TERM
if [ "$mode" = file ]; then
  while [ ! -e "$arg" ]; do sleep 0.02; done
else
  end=$(( $(date +%s%N) + arg * 1000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do sleep 0.02; done
fi
echo "end $name $KVNODE_FENCING_TOKEN $(now) $$" >> "$log"
"""


@dataclass
class Section:
    """One critical section as the command saw it."""

    name: str
    token: int
    start: float
    end: float | None  # None: it never said it ended (killed without a chance to)
    pid: int


def read_sections(log: Path) -> list[Section]:
    """The sections in `log`, in order of their start."""
    open_sections: dict[int, Section] = {}
    done: list[Section] = []
    if not log.exists():
        return []
    for line in log.read_text().splitlines():
        kind, name, token, at, pid = line.split()
        if kind == "start":
            open_sections[int(pid)] = Section(name, int(token), float(at), None, int(pid))
        elif int(pid) in open_sections:
            section = open_sections.pop(int(pid))
            section.end = float(at)
            done.append(section)
    return sorted([*done, *open_sections.values()], key=lambda s: s.start)


def check_sections(sections: list[Section]) -> dict[str, Any]:
    """Overlaps in real time, and tokens that did not grow with each new holder."""
    problems: list[str] = []
    for earlier, later in itertools.pairwise(sections):
        if earlier.end is None or earlier.end > later.start:
            ended = "never ended" if earlier.end is None else f"ended at {earlier.end:.3f}"
            problems.append(
                f"overlap: {later.name} (token {later.token}) started at {later.start:.3f}"
                f" while {earlier.name} (token {earlier.token}) held the lock ({ended})"
            )
        if later.token <= earlier.token:
            problems.append(
                f"token order: {later.name} got {later.token} after {earlier.name} had"
                f" {earlier.token}"
            )
    return {"sections": len(sections), "problems": problems, "valid": not problems}


def write_holder_script(directory: Path) -> Path:
    path = directory / "holder.sh"
    path.write_text(HOLDER_SCRIPT)
    return path


def holder_command(directory: Path, name: str, hold: str) -> list[str]:
    """The critical section of contender `name`, recorded in `directory/sections.log`.
    `hold`: "file:PATH" (until PATH exists) or "for:MS" (milliseconds)."""
    mode, arg = hold.split(":", 1)
    script = directory / "holder.sh"
    return ["sh", str(script), str(directory / SECTIONS_LOG), name, mode, arg]


class Contender:
    """One `kvnode lock` process running `command`; its stderr goes to a file."""

    def __init__(
        self,
        name: str,
        lock: str,
        endpoints: list[str],
        directory: Path,
        *,
        ttl: float,
        command: list[str],
        token: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.err_path = directory / f"{name}.err"
        env = {**os.environ, "KVNODE_ENDPOINTS": ",".join(endpoints)}
        if token:
            env["KVNODE_TOKEN"] = token
        argv = [sys.executable, "-m", "kvnode", "lock", "--ttl", f"{ttl:g}", *extra, lock, "--"]
        with self.err_path.open("ab") as err:
            self.process = subprocess.Popen(
                [*argv, *command],
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def signal(self, number: signal.Signals) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, number)

    def stop(self) -> None:
        """Never leave one behind: resume it if paused, then SIGKILL it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait()
