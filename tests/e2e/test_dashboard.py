"""`ddb-bridge status --serve`: the live dashboard, rendered by headless Chromium during a
running pipeline (stream + scan back-fill + apply into SQLite, on moto and the real broker).

Chromium loads the page twice: while nothing is applied yet (apply lag > 0, no back-fill)
and after the back-fill ran and apply caught up (lag 0, parts 2/2, 40 items, a longer lag
chart). The numbers are read from the rendered DOM, not from /api/status. A screenshot of
the second load is kept in the test's tmp_path. Chromium comes from Debian's `chromium`
package (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bridge.model import attrs
from connectors.dynamodb.capture import read_capture
from ddb_bridge.cli.main import main
from tests.apply_harness import ApplyProcess
from tests.backfill_helpers import create_table, write_items
from tests.e2e.test_status_cli import _config
from tests.samples import sample_item
from tests.stream_helpers import cli_env, launch_stream, stop_process
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            # Enough for the page's first fetch of /api/status and its render.
            "--virtual-time-budget=4000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class _Fields(HTMLParser):
    """Text of every element carrying `data-field`, and the chart's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.chart: dict[str, str | None] = {}
        self.series: list[dict[str, str | None]] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        a = dict(attributes)
        if tag == "svg" and a.get("id") == "lag-chart":
            self.chart = a
        if tag == "polyline" and "data-series" in a:
            self.series.append(a)
        field = a.get("data-field")
        if field is not None:
            self._open.append(field)
            self.fields[field] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag in ("span", "div"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self.fields[self._open[-1]] += data


def _rendered(url: str) -> _Fields:
    parser = _Fields()
    parser.feed(_chromium("--dump-dom", url))
    return parser


def _api(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/status", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def _lag(api: dict[str, Any]) -> int | None:
    if api["report"] is None:
        return None
    (table,) = api["report"]["tables"]
    (target,) = table["targets"]
    lag: int | None = target["lag"]
    return lag


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install --no-install-recommends chromium)",
)
def test_dashboard_shows_a_running_pipeline_move_in_headless_chromium(
    dynamodb_endpoint: str,
    kafka_bootstrap: str,
    unique_name: Any,
    ddb_client: Any,
    tmp_path: Path,
) -> None:
    table, lease_table = unique_name("dash"), unique_name("leases")
    create_table(ddb_client, table, stream=True)
    write_items(lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(30)], 1)
    config = _config(
        tmp_path / "bridge.toml",
        dynamodb_endpoint,
        kafka_bootstrap,
        table,
        lease_table,
        tmp_path / "target.db",
    )
    env = cli_env(dynamodb_endpoint, kafka_bootstrap)
    arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]

    stream = launch_stream(config, env, tmp_path / "stream.log")
    serve_cmd = [
        sys.executable,
        "-m",
        "ddb_bridge.cli.main",
        "status",
        "--config",
        str(config),
        "--interval-s",
        "1",
        "--sample-s",
        "0",
        "--serve",
        "0",
    ]
    # Its log goes to a file, shown when it fails: a pipe nobody reads can fill (64 KiB) and
    # block the dashboard on a log line.
    dashboard_log = tmp_path / "dashboard.log"
    log_file = dashboard_log.open("w")
    dashboard = subprocess.Popen(
        serve_cmd, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True
    )
    apply: ApplyProcess | None = None
    extra: list[subprocess.Popen[str]] = []
    try:
        wait_until(lambda: read_capture(ddb_client, lease_table, arn) is not None, 60, "capture")
        write_items(
            lambda: ddb_client, table, [attrs.to_boto(sample_item(i)) for i in range(30, 40)], 1
        )
        assert dashboard.stdout is not None
        line = dashboard.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:"), line + dashboard_log.read_text()
        url = line.split()[1]

        # Moment 1: changes published, nothing applied, no back-fill yet.
        wait_until(lambda: (_lag(_api(url)) or 0) >= 10, 60, "apply lag on the dashboard")
        first = _rendered(url)
        assert first.fields["backfill-parts"] == "none yet", first.fields
        lag_before = int(first.fields["apply-lag"])
        assert lag_before >= 10
        assert first.fields["dlq-depth"] == "0"
        assert first.fields["alarms"] == "0"
        assert first.fields["verdict"] == "NOT READY to cut over"
        samples_before = int(first.chart["data-samples"] or 0)
        assert samples_before >= 1

        # The pipeline moves: back-fill, then apply catches up.
        time.sleep(1.1)  # the back-fill's T - margin (0 s) must follow the capture start
        backfill = ["backfill", "--config", str(config), "--table", table, "--from", "scan"]
        assert main([*backfill, "--no-progress"]) == 0
        apply = ApplyProcess(config, "--create-schema")
        apply.wait_joined()
        wait_until(lambda: _lag(_api(url)) == 0, 90, "apply lag 0 on the dashboard")

        # Moment 2: the rendered numbers have moved.
        second = _rendered(url)
        assert second.fields["backfill-parts"] == "2/2", second.fields
        assert second.fields["backfill-items"] == "40"  # the scan saw every item by then
        assert int(second.fields["apply-lag"]) == 0 < lag_before
        assert second.fields["stream-unread"] == "0"
        assert second.fields["verdict"] == "NOT READY to cut over"
        assert int(second.chart["data-samples"] or 0) > samples_before
        lag_series = [s for s in second.series if s["data-series"].endswith(": apply lag")]
        (series,) = lag_series
        assert series["data-series"] == f"{table} -> local: apply lag"
        # Beside lag: the back-fill's items/s and apply's events/s, each a line of samples.
        rates = {s["data-series"]: s["points"] or "" for s in second.series}
        assert set(rates) - {series["data-series"]} == {
            f"{table}: back-fill items/s",
            f"{table} -> local: applied events/s",
        }
        applied = [
            float(p.split(",")[1]) for p in rates[f"{table} -> local: applied events/s"].split()
        ]
        assert len(set(applied)) > 1  # apply's rate moved off 0 and back: a plotted line
        points = (series["points"] or "").split()
        assert len(points) > samples_before
        ys = {float(p.split(",")[1]) for p in points}
        assert len(ys) > 1  # the lag line rose and fell: the chart shows it moving

        shot = tmp_path / "dashboard.png"
        print(f"dashboard screenshot: {shot}")
        _chromium(f"--screenshot={shot}", "--window-size=1000,760", "--hide-scrollbars", url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # A second dashboard on the same port: a clear error naming it, exit 2.
        port = url.rstrip("/").rsplit(":", 1)[1]
        taken = subprocess.run(
            [*serve_cmd[:-1], port],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert taken.returncode == 2, taken.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr

        dashboard.send_signal(signal.SIGTERM)
        assert dashboard.wait(30) == 0, dashboard_log.read_text()
        # Ctrl-C stops it cleanly too.
        again = subprocess.Popen(serve_cmd, env=env, stdout=subprocess.PIPE, text=True)
        extra.append(again)
        assert again.stdout is not None
        assert again.stdout.readline().startswith("dashboard: http://127.0.0.1:")
        again.send_signal(signal.SIGINT)
        assert again.wait(30) == 0
    finally:
        for proc in [dashboard, *extra]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log_file.close()
        if apply is not None:
            apply.terminate()
        stop_process(stream)
