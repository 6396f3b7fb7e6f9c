"""/livez and /readyz: what each answers while a daemon starts, works, waits and is wedged."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from bridge.runtime.metrics import LAST_PROGRESS, Metrics
from bridge.runtime.metrics_server import Health, serve
from bridge.runtime.settings import MetricsSettings
from bridge.runtime.waits import waiting, waits_now


def stalled(m: Metrics, daemon: str, seconds: float) -> None:
    m.set(LAST_PROGRESS, time.time() - seconds, daemon=daemon)


def test_liveness_is_starting_progress_or_a_declared_wait_and_503_only_when_wedged() -> None:
    m = Metrics()
    health = Health("apply", probe=None, stall_s=5, metrics=m)
    # Starting (connecting, joining the group) is a legitimate wait: a startup probe's matter.
    assert health.liveness() is None
    m.progress("apply")
    assert health.liveness() is None
    stalled(m, "apply", 30)
    assert "no progress for 30s" in (health.liveness() or "")
    # The same stall while the loop waits for a dependency it declared: alive.
    with waiting("Kafka (the producer's queue is full)"):
        assert health.liveness() is None
        assert health.waiting_on() == "Kafka (the producer's queue is full)"
    assert "no progress for 30s" in (health.liveness() or "")


def test_liveness_ignores_the_dependencies_readiness_asks() -> None:
    m = Metrics()
    m.progress("stream")
    health = Health("stream", probe=lambda: "Kafka unreachable at x:1: down", metrics=m)
    assert health.liveness() is None
    assert health.readiness() == "Kafka unreachable at x:1: down"


def test_readiness_needs_a_started_live_loop_and_every_probe() -> None:
    m = Metrics()
    health = Health("apply", probe=None, stall_s=5, metrics=m)
    assert "starting" in (health.readiness() or "")
    m.progress("apply")
    assert health.readiness() is None
    health.add_probe("target", lambda: "target local (sqlite) does not answer: gone")
    assert health.readiness() == "target local (sqlite) does not answer: gone"
    health.add_probe("target", lambda: None)  # replaced by name
    assert health.readiness() is None
    stalled(m, "apply", 30)
    assert "no progress for 30s" in (health.readiness() or "")


def test_a_probe_that_raises_is_a_reason_not_a_crash() -> None:
    m = Metrics()
    m.progress("apply")

    def broken() -> str | None:
        raise RuntimeError("boom")

    health = Health("apply", probe=broken, metrics=m)
    assert "boom" in (health.readiness() or "")


def test_waits_nest_and_name_the_oldest() -> None:
    assert waits_now() == []
    with waiting("Kafka"):
        time.sleep(0.01)
        with waiting("target t"):
            assert [on for on, _ in waits_now()] == ["Kafka", "target t"]
        done = threading.Event()

        def other_thread() -> None:
            with waiting("S3"):
                done.wait(5)

        t = threading.Thread(target=other_thread)
        t.start()
        time.sleep(0.05)
        assert "S3" in [on for on, _ in waits_now()]
        done.set()
        t.join()
    assert waits_now() == []


def get(port: int, path: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoints_livez_readyz_and_healthz_is_readiness() -> None:
    m = Metrics()
    state: dict[str, str | None] = {"kafka": None}
    server = serve(MetricsSettings(stall_s=5), "apply", lambda: state["kafka"], port=0, metrics=m)
    assert server is None  # port 0: off
    server = serve(
        MetricsSettings(port=0), "apply", lambda: state["kafka"], port=_free_port(), metrics=m
    )
    assert server is not None
    server.health.probe_interval_s = 0
    try:
        assert get(server.port, "/livez") == (200, {"daemon": "apply", "status": "starting"})
        code, body = get(server.port, "/readyz")
        assert code == 503 and "starting" in body["reason"]
        m.progress("apply")
        assert get(server.port, "/livez") == (200, {"daemon": "apply", "status": "ok"})
        assert get(server.port, "/readyz") == (200, {"daemon": "apply", "status": "ok"})
        state["kafka"] = "Kafka unreachable at x:1: down"
        assert get(server.port, "/livez")[0] == 200
        for path in ("/readyz", "/healthz"):
            code, body = get(server.port, path)
            assert (code, body["reason"]) == (503, "Kafka unreachable at x:1: down"), path
        stalled(m, "apply", 600)
        with waiting("Kafka"):
            assert get(server.port, "/livez") == (
                200,
                {"daemon": "apply", "status": "waiting", "waiting_on": "Kafka"},
            )
        code, body = get(server.port, "/livez")
        assert code == 503 and "no progress for 600s" in body["reason"]
    finally:
        server.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
