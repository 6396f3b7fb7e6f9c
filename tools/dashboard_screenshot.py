"""Regenerate docs/dashboard.png: a headless-Chromium screenshot of the demo's dashboard.

    make dashboard-png                  (or: .venv/bin/python tools/dashboard_screenshot.py)
    make dashboard-png DEMO_ARGS="--items 2000"

Runs `ddb-bridge demo --keep-up` with DEMO_ARGS, waits for the stack it keeps up after its
summary, lets the dashboard take a few more samples (so the charts show the lag back at 0),
screenshots the page the demo printed, then stops the demo with SIGTERM, as a user would.
Needs Chromium (`apt-get install --no-install-recommends chromium`).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Wide enough for four status boxes in a row, tall enough for both charts and the table.
WINDOW = "1280,1250"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-args", default="", help="passed to `ddb-bridge demo`")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument(
        "--settle-s", type=float, default=12.0, help="samples after the summary, before the shot"
    )
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("dashboard-png: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ddb_bridge.cli.main",
            "demo",
            "--keep-up",
            *shlex.split(args.demo_args),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        assert demo.stdout is not None
        for line in demo.stdout:
            print(line, end="", flush=True)
            if line.startswith("  live dashboard "):
                url = line.split(": ", 1)[1].strip()
            if line.startswith("  stop ") and url:
                break
        if url is None:
            print("dashboard-png: the demo ended before its dashboard was up", file=sys.stderr)
            return 1
        time.sleep(args.settle_s)
        shot = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=4000",
             f"--window-size={WINDOW}", f"--screenshot={args.out}", url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if shot.returncode != 0:
            print(f"dashboard-png: chromium failed: {shot.stderr}", file=sys.stderr)
            return 1
        print(f"dashboard-png: wrote {args.out}")
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
