"""The image's HEALTHCHECK: `python -m ddb_bridge.healthcheck [--ready] [PORT]`; exit 0 or 1.

Asks the daemon's own `/livez` (bridge/runtime/metrics_server.py): Docker's health is a
liveness check (Swarm and autoheal replace an unhealthy container), so a broker outage, which
`/livez` rides out, does not cycle every container. `--ready` asks `/readyz` instead (Kafka
and the target or source answer now), for a `depends_on: service_healthy` that must wait for
a working daemon. Without PORT it reads the container's command
(PID 1's command line): the daemon it runs and its `--metrics-port`, else `[metrics] port`
plus the daemon's offset from the settings. A command that serves no probes (`verify`, a
one-shot script) passes: its exit code is its health. A Python process every 30 s, not a JVM.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# Where the container's command is read; a test points it at a file of its own.
CMDLINE_ENV = "DDB_BRIDGE_HEALTHCHECK_CMDLINE"


def _port_from_command(argv: list[str]) -> int | None:
    """The port the daemon in `argv` serves on; None when it serves none."""
    from bridge.runtime.metrics_server import PORT_OFFSETS, resolve_port
    from bridge.runtime.settings import load_settings

    daemon = next((a for a in argv if a in PORT_OFFSETS), None)
    if daemon is None:
        return None
    override = None
    if "--metrics-port" in argv[:-1]:
        override = int(argv[argv.index("--metrics-port") + 1])
    config = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    port = resolve_port(load_settings(config).metrics, daemon, override)
    return port or None  # 0: metrics (and /healthz) turned off


def main(args: list[str]) -> int:
    path = "/livez"
    if args[:1] == ["--ready"]:
        path, args = "/readyz", args[1:]
    if args:
        port: int | None = int(args[0])
    else:
        cmdline = Path(os.environ.get(CMDLINE_ENV, "/proc/1/cmdline")).read_bytes()
        port = _port_from_command([a.decode() for a in cmdline.split(b"\0") if a])
        if port is None:
            return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except urllib.error.HTTPError as exc:
        # The probe says why in its JSON body; Docker keeps it in `docker inspect`.
        print(
            f"unhealthy ({exc.code}): {exc.read().decode(errors='replace')[:500]}", file=sys.stderr
        )
        return 1
    except OSError as exc:
        print(f"unhealthy: nothing answers on port {port} ({exc})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
