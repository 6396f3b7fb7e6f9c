"""How many CPUs this process may use: the cgroup CPU quota of its container, if any.

A pod limited to 2 CPUs on a 64-core node still sees 64 cores (`os.sched_getaffinity`), and
64 back-fill processes there would share 2 CPUs' worth of time, each throttled, with 64 times
the memory. The quota is in the cgroup files: v2 `cpu.max` ("<quota> <period>" or "max
<period>") in the process's cgroup and each of its parents (the tightest wins); v1
`cpu/cpu.cfs_quota_us` over `cpu.cfs_period_us` (-1: none).
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """The process's cgroup folder and its parents up to the root (v2: the `0::` line)."""
    own = "/"
    for line in (_read(proc_cgroup) or "").splitlines():
        if line.startswith("0::"):
            own = line[3:] or "/"
    folder = root / own.strip("/")
    folders = [folder, *folder.parents]
    return [f for f in folders if f == root or root in f.parents]


def cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs' worth of time allowed to this process's cgroup; None when unlimited or unknown."""
    limits = []
    for folder in _v2_folders(root, proc_cgroup):
        fields = (_read(folder / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max":
            limits.append(int(fields[0]) / int(fields[1]))
    quota = _read(root / "cpu" / "cpu.cfs_quota_us")
    period = _read(root / "cpu" / "cpu.cfs_period_us")
    if quota and period and int(quota) > 0 and int(period) > 0:
        limits.append(int(quota) / int(period))
    return min(limits) if limits else None
