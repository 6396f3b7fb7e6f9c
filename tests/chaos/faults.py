"""The fault schedule: which process is SIGKILLed when, when the broker and PostgreSQL are
down, and when the undecodable record goes in; all drawn from the run's seed.

Times are seconds from the writer's start. Kills land outside the outages themselves (the
run's own thread is busy stopping and starting the service then), but anywhere else, also just
before one: a process restarted then meets the outage while it starts, and exits 75 when Kafka
does not answer (the documented "run me again" code), which the supervisor restarts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KILL_TARGETS = ("stream", "backfill", "apply-a", "apply-b")
KILL_BEFORE_OUTAGE_S = 1.0
KILL_AFTER_OUTAGE_S = 1.0


@dataclass(frozen=True)
class Kill:
    at: float
    target: str


@dataclass(frozen=True)
class Outage:
    at: float
    service: str  # "kafka" or "postgres"
    duration_s: float


@dataclass(frozen=True)
class Inject:
    at: float


@dataclass(frozen=True)
class BrokerFault:
    """On a three-node cluster: SIGKILL `what` — the leader of a change-topic partition, the
    active controller, or two nodes at once (below min.insync.replicas=2) — for `down_s`."""

    at: float
    what: str  # "leader", "controller" or "two"
    down_s: float


@dataclass(frozen=True)
class Schedule:
    kills: tuple[Kill, ...]
    outages: tuple[Outage, ...]
    inject: Inject
    broker_faults: tuple[BrokerFault, ...] = ()

    def describe(self) -> str:
        kills = ", ".join(f"{k.target}@{k.at:.1f}s" for k in self.kills)
        outages = ", ".join(f"{o.service}@{o.at:.1f}s+{o.duration_s:.0f}s" for o in self.outages)
        brokers = ", ".join(f"{b.what}@{b.at:.1f}s+{b.down_s:.0f}s" for b in self.broker_faults)
        return (
            f"kills [{kills}]; outages [{outages}]; broker kills [{brokers}]; "
            f"inject @{self.inject.at:.1f}s"
        )


def plan_cluster(rng: random.Random, workload_s: float, down_s: float) -> Schedule:
    """Broker faults only, one after another while the writer writes (the bridge's processes
    are not killed: with nothing but brokers failing, every stream record must reach the
    topic exactly once): the partition leader while the back-fill and stream publish, the
    active controller, the leader again while apply works through the backlog, then two
    nodes at once. The undecodable record goes in between two of them."""
    gap = workload_s / 5
    faults = (
        BrokerFault(rng.uniform(0.6, 0.9) * gap, "leader", down_s),
        BrokerFault(rng.uniform(1.6, 1.9) * gap, "controller", down_s),
        BrokerFault(rng.uniform(2.6, 2.9) * gap, "leader", down_s),
        BrokerFault(rng.uniform(3.6, 3.9) * gap, "two", down_s),
    )
    return Schedule((), (), Inject(rng.uniform(4.5, 4.8) * gap), faults)


def plan(
    rng: random.Random,
    workload_s: float,
    kills: int,
    broker_down_s: float,
    pg_down_s: float,
    backfill_window_s: float,
) -> Schedule:
    """Outages in the middle of the workload, kills at random moments around them (at least
    two per target; the back-fill's inside the window it is expected to run)."""
    # Room for the restart after each outage: the broker takes seconds to serve again.
    broker_at = rng.uniform(0.25, 0.35) * workload_s
    pg_at = max(broker_at + broker_down_s + 15, rng.uniform(0.55, 0.65) * workload_s)
    outages = (Outage(broker_at, "kafka", broker_down_s), Outage(pg_at, "postgres", pg_down_s))

    def clear(t: float) -> bool:
        return all(
            not (o.at - KILL_BEFORE_OUTAGE_S <= t <= o.at + o.duration_s + KILL_AFTER_OUTAGE_S)
            for o in outages
        )

    def draw(lo: float, hi: float) -> float:
        for _ in range(10_000):
            t = rng.uniform(lo, hi)
            if clear(t):
                return t
        raise ValueError(f"no moment in [{lo:.0f}, {hi:.0f}] s clear of the outages")

    targets = [t for t in KILL_TARGETS for _ in range(2)]
    targets += [rng.choice(KILL_TARGETS) for _ in range(max(0, kills - len(targets)))]
    out: list[Kill] = []
    for target in targets:
        if target == "backfill":
            out.append(Kill(draw(3.0, max(6.0, backfill_window_s)), target))
        else:
            out.append(Kill(draw(3.0, workload_s - 3.0), target))
    inject = Inject(draw(0.1 * workload_s, 0.9 * workload_s))
    return Schedule(tuple(sorted(out, key=lambda k: k.at)), outages, inject)
