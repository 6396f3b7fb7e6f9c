"""What the benchmarks read from /proc: a process's resident memory, its CPU seconds, its
descendants, and which role (broker, moto, bridge, the benchmark itself) a process plays.

Read from /proc rather than from `resource.getrusage` because the figures are wanted *while*
a process runs (RSS against items done, CPU per process over a measured window), and for
processes the benchmark did not start directly (the broker is a grandchild).
Linux only, like the benchmarks' machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_vmrss_kb(status_text: str) -> int | None:
    """VmRSS of a /proc/PID/status text, in kB; None when absent (a zombie has none)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit():
                raise ValueError(f"unreadable VmRSS line: {line!r}")
            if len(fields) > 2 and fields[2].lower() != "kb":
                raise ValueError(f"VmRSS not in kB: {line!r}")
            return int(fields[1])
    return None


def parse_stat(stat_text: str) -> tuple[str, int, float]:
    """(comm, parent pid, CPU seconds user+system) of a /proc/PID/stat line.

    The command name is in parentheses and may itself hold spaces and parentheses, so the
    fields are counted from the *last* ')'. utime and stime are fields 14 and 15 (1-based),
    in clock ticks.
    """
    open_at, close_at = stat_text.find("("), stat_text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise ValueError(f"unreadable stat line: {stat_text[:80]!r}")
    comm = stat_text[open_at + 1 : close_at]
    rest = stat_text[close_at + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3].
    if len(rest) < 13:
        raise ValueError(f"stat line too short: {stat_text[:80]!r}")
    ppid = int(rest[1])
    ticks = int(rest[11]) + int(rest[12])
    return comm, ppid, ticks / CLOCK_TICKS


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` in MB (2^20 bytes); None when it has exited."""
    try:
        kb = parse_vmrss_kb((PROC / str(pid) / "status").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if kb is None else kb / 1024


def cpu_seconds(pid: int) -> float | None:
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())[2]
    except (FileNotFoundError, ProcessLookupError):
        return None


class ProcessCpu:
    """CPU seconds (user + system, every thread) one process spends inside a `with` block:
    the bridge's CPU per item where the benchmark runs the bridge's code in its own process
    (its librdkafka and driver threads included), or where `pid` is the bridge's process.

    /proc counts in clock ticks (10 ms): a window of a few seconds measures to ~1 %.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.seconds = 0.0
        self._start: float | None = None

    def __enter__(self) -> ProcessCpu:
        self._start = cpu_seconds(self.pid)
        return self

    def __exit__(self, *_: object) -> None:
        now = cpu_seconds(self.pid)
        if self._start is None or now is None:
            raise RuntimeError(f"process {self.pid} exited inside its CPU window")
        self.seconds = now - self._start

    def us_per(self, items: int) -> float | None:
        """CPU µs per item over the window; None for no items."""
        return self.seconds * 1e6 / items if items else None


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def parents() -> dict[int, int]:
    """pid -> parent pid of every process now running."""
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            out[int(entry.name)] = parse_stat((entry / "stat").read_text())[1]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # exited while listed
    return out


def descendants(root: int, parent_of: Mapping[int, int]) -> list[int]:
    """`root` and every process below it, from a pid -> parent pid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


# (substring of the command line, role): the first match names the role.
ROLES: tuple[tuple[str, str], ...] = (
    ("kafka.Kafka", "broker"),
    ("tansu", "broker"),
    ("moto_server", "moto"),
    ("ddb_bridge.cli.main", "bridge"),
    ("bench_apply_workers --child", "bridge"),  # an apply worker process of that benchmark
    ("ddb-bridge", "bridge"),
    ("backfill_helper", "bridge"),
    ("benchmarks.", "bench"),
    ("postgres", "postgres"),
    ("CassandraDaemon", "cassandra"),
)


def role_of(command: str, *, bench_pid: int | None = None, pid: int | None = None) -> str:
    if bench_pid is not None and pid == bench_pid:
        return "bench"
    for needle, role in ROLES:
        if needle in command:
            return role
    return "other"


def cpu_by_role(
    pids: Iterable[int], roles: Mapping[int, str], before: Mapping[int, float]
) -> dict[str, float]:
    """CPU seconds spent since `before` (pid -> seconds then) per role, over `pids`."""
    out: dict[str, float] = {}
    for pid in pids:
        now = cpu_seconds(pid)
        if now is None:
            continue
        role = roles.get(pid, "other")
        out[role] = out.get(role, 0.0) + now - before.get(pid, 0.0)
    return out


def machine_cpu_seconds(stat_text: str | None = None) -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat's `cpu` line:
    the share of the machine other work took during a run is read from two of these."""
    text = stat_text if stat_text is not None else (PROC / "stat").read_text()
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest* are inside user/nice)
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            total = sum(ticks[:8])
            return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS
    raise ValueError("no cpu line in /proc/stat")


class CpuWatch:
    """CPU seconds per role (broker, moto, bridge, bench, ...) of the benchmark's process tree
    over a window, and how busy the whole machine was meanwhile.

    A thread re-reads every process of the tree every `interval_s`, keeping each one's last
    figure, so a process that exits inside the window (a back-fill command) still counts, to
    within one interval of its CPU time.
    """

    def __init__(
        self, root: int | None = None, interval_s: float = 0.25, extra_roots: Iterable[int] = ()
    ) -> None:
        import threading

        self.root = os.getpid() if root is None else root
        # Daemons that left the tree (PostgreSQL's postmaster detaches from pg_ctl).
        self.extra_roots = list(extra_roots)
        self.interval_s = interval_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-watch", daemon=True)
        self._machine_start = (0.0, 0.0)
        self._wall_start = 0.0
        self.wall_s = 0.0
        self.machine_busy_s = 0.0
        self.machine_total_s = 0.0

    def _sample(self, first: bool) -> None:
        parent_of = parents()
        pids = descendants(self.root, parent_of)
        for extra in self.extra_roots:
            pids.extend(descendants(extra, parent_of))
        for pid in pids:
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            if pid not in self._roles:
                role = role_of(cmdline(pid), bench_pid=self.root, pid=pid)
                parent_role = self._roles.get(parent_of.get(pid, 0))
                if role == "other" and parent_role not in (None, "bench"):
                    # A helper a process spawned (multiprocessing's `python -c ...`
                    # of `backfill --processes N`) works for its parent's role.
                    role = parent_role
                self._roles[pid] = role
                # A process born inside the window counts from zero.
                self._first[pid] = cpu if first else 0.0
            self._last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample(first=False)

    def __enter__(self) -> CpuWatch:
        import time

        self._sample(first=True)
        self._machine_start = machine_cpu_seconds()
        self._wall_start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        import time

        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        busy, total = machine_cpu_seconds()
        self.wall_s = time.monotonic() - self._wall_start
        self.machine_busy_s = busy - self._machine_start[0]
        self.machine_total_s = total - self._machine_start[1]

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, last in self._last.items():
            role = self._roles[pid]
            out[role] = out.get(role, 0.0) + last - self._first.get(pid, 0.0)
        return {role: round(s, 2) for role, s in sorted(out.items())}

    def summary(self) -> dict[str, object]:
        """What goes in a results file: CPU seconds per role, their share of the window's
        core-seconds, and the CPU taken outside the tree (other work on the machine)."""
        roles = self.by_role()
        core_s = self.machine_total_s or 1.0
        ours = sum(roles.values())
        counts: dict[str, int] = {}
        for pid, role in self._roles.items():
            if self._last.get(pid, 0.0) - self._first.get(pid, 0.0) > 0:
                counts[role] = counts.get(role, 0) + 1
        return {
            "wall_s": round(self.wall_s, 2),
            "core_seconds": round(self.machine_total_s, 2),
            "cpu_s_by_role": roles,
            "busy_processes_by_role": dict(sorted(counts.items())),
            "share_of_cores_by_role": {r: round(s / core_s, 3) for r, s in roles.items()},
            "cpu_s_outside_benchmark": round(max(0.0, self.machine_busy_s - ours), 2),
            "idle_share": round(1 - self.machine_busy_s / core_s, 3),
        }


def cpu_line(summary: Mapping[str, object]) -> str:
    """One line of a CpuWatch summary: each role's share of the machine's cores."""
    shares = summary.get("share_of_cores_by_role")
    assert isinstance(shares, dict)
    parts = [f"{role} {share:.0%}" for role, share in sorted(shares.items(), key=lambda x: -x[1])]
    return (
        f"share of the {os.cpu_count()} cores over {summary.get('wall_s')}s: "
        f"{', '.join(parts)}; other work on the machine "
        f"{summary.get('cpu_s_outside_benchmark')} CPU-s; idle {summary.get('idle_share')}"
    )


def median_shares(summaries: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """Per role (plus `idle` and `outside`), the median share of the cores over runs."""
    import statistics

    found: dict[str, list[float]] = {}
    for summary in summaries:
        shares = summary.get("share_of_cores_by_role")
        core_s = summary.get("core_seconds")
        assert isinstance(shares, dict) and isinstance(core_s, float | int)
        for role, share in shares.items():
            found.setdefault(role, []).append(float(share))
        idle = summary.get("idle_share")
        outside = summary.get("cpu_s_outside_benchmark")
        if isinstance(idle, float | int):
            found.setdefault("idle", []).append(float(idle))
        if isinstance(outside, float | int) and core_s:
            found.setdefault("other work", []).append(float(outside) / float(core_s))
    return {role: round(statistics.median(v), 3) for role, v in sorted(found.items())}


def postmaster_pid(datadir: str | os.PathLike[str]) -> int | None:
    """The pid of a running PostgreSQL cluster (first line of its postmaster.pid)."""
    try:
        return int((Path(datadir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
