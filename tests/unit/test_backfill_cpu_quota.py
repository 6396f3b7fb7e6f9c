"""`--processes`' default respects the container's CPU quota (cgroup v2 `cpu.max`, v1
`cpu.cfs_quota_us`), read from a fake cgroup tree: a pod limited to 2 CPUs on a 64-core node
must not start 64 back-fill processes."""

from __future__ import annotations

from pathlib import Path

from connectors.sources.backfill.processes import default_processes


def cgroup_v2(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup with `cpu.max` files, and a /proc/self/cgroup naming `own`."""
    root = tmp_path / "cgroup"
    for path, line in limits.items():
        folder = root / path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.max").write_text(line + "\n")
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_a_quota_of_two_cpus_gives_two_processes(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"/": "200000 100000"})
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=64) == 2


def test_a_fractional_quota_rounds_down_but_never_below_one(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"/": "150000 100000"})
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=8) == 1
    root, proc = cgroup_v2(tmp_path / "b", "/", {"/": "50000 100000"})
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=8) == 1


def test_no_quota_means_one_process_per_core(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"/": "max 100000"})
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=6) == 6
    missing = tmp_path / "nothing"
    assert default_processes(cgroup_root=missing, proc_cgroup=missing, cpus=3) == 3


def test_a_quota_smaller_than_the_cores_wins_and_more_cores_than_allowed_do_not(
    tmp_path: Path,
) -> None:
    root, proc = cgroup_v2(tmp_path, "/", {"/": "800000 100000"})
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=4) == 4


def test_the_tightest_quota_of_the_process_cgroup_and_its_parents_wins(tmp_path: Path) -> None:
    root, proc = cgroup_v2(
        tmp_path,
        "/kubepods/pod-a/container-b",
        {"/kubepods/pod-a": "300000 100000", "/kubepods/pod-a/container-b": "max 100000"},
    )
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=32) == 3


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:cpu,cpuacct:/\n")
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=16) == 4
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no limit"
    assert default_processes(cgroup_root=root, proc_cgroup=proc, cpus=16) == 16
