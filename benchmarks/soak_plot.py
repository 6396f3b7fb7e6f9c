"""benchmarks/results/soak.png: one panel per metric over the soak, back-fill windows shaded.

Needs matplotlib (the `bench` extra: `pip install -e '.[bench]'`, which `make soak` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS: list[tuple[str, str, tuple[str, ...]]] = [
    # (title, what, processes): `what` is a process metric or a sample key
    ("RSS, MB", "rss_mb", ("stream", "apply", "backfill")),
    ("open file descriptors", "fds", ("stream", "apply", "backfill")),
    ("threads", "threads", ("stream", "apply", "backfill")),
    ("lag, events (apply: group lag; stream: changes not yet in Kafka)", "lags", ()),
    ("moto and broker RSS, MB", "rss_mb", ("moto", "broker")),
    ("writer's mean DynamoDB call, ms (moto slowing down?)", "writer_call_ms", ()),
]


def _value(row: dict[str, Any], process: str, metric: str) -> float | None:
    got = row["processes"].get(process)
    if got is None:
        return None
    return float(got["rss_kb"] / 1024 if metric == "rss_mb" else got[metric])


def plot(
    samples: list[dict[str, Any]], backfills: list[dict[str, Any]], path: Path, title: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(11, 2.6 * len(PANELS)), sharex=True)
    minutes = [row["t"] / 60 for row in samples]
    drain_from = next((row["t"] / 60 for row in samples if row["phase"] == "drain"), None)
    for ax, (name, what, processes) in zip(axes, PANELS, strict=True):
        if what == "lags":
            for key in ("apply_lag", "stream_lag"):
                ax.plot(minutes, [row[key] for row in samples], label=key.replace("_", " "))
        elif not processes:
            ax.plot(minutes, [row[what] for row in samples], label=what)
        else:
            for process in processes:
                points = [
                    (m, v)
                    for m, row in zip(minutes, samples, strict=True)
                    if (v := _value(row, process, what)) is not None
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    style = "." if process == "backfill" else "-"
                    ax.plot(xs, ys, style, label=process, markersize=3)
        for bf in backfills:
            end = bf["started_s"] + (bf["duration_s"] or 0)
            ax.axvspan(bf["started_s"] / 60, end / 60, color="orange", alpha=0.2, lw=0)
        if drain_from is not None:
            ax.axvline(drain_from, color="grey", ls="--", lw=1)
        ax.set_title(name, fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes (shaded: back-fill running; dashed: writer stopped, draining)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
