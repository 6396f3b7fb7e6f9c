"""The demo's printed summary, from its data: every number labelled or explained, the
writer's asked-for rate beside the achieved one, "0 differences" said once, and no hint to
look at a stack that has already stopped."""

from __future__ import annotations

from bridge.verify.passes import VerifyReport
from ddb_bridge.demo.orchestrator import DemoResult, summary


def _verified(differences: int = 0) -> VerifyReport:
    return VerifyReport(
        table="orders", target="local", source_items=9_875, target_rows_checked=9_875,
        different=differences,
    )  # fmt: skip


def _finished() -> DemoResult:
    from ddb_bridge.demo.summary import WriterCounts

    return DemoResult(
        items=10_000,
        writer=WriterCounts(
            puts=100,
            updates=402,
            deletes=168,
            absent_deletes=9,
            creating_updates=7,
            seconds=44.7,
            asked_per_s=150,
        ),
        events=10_678,
        backfill_events=10_010,
        stream_records=668,
        backfill_s=27.1,
        catch_up_s=1.2,
        apply_s=52.3,
        final_lag=0,
        verify=_verified(),
        verify_s=12.5,
        total_s=99.0,
        status_lags=[(20.0, 1_234), (35.0, 56), (50.0, 0)],
        status_command="ddb-bridge status --config /tmp/x/bridge.toml",
        dashboard_url="http://127.0.0.1:4321/",
    )


def test_the_summary_says_its_differences_once_on_its_last_line() -> None:
    result = DemoResult(items=10, verify=_verified(), final_lag=0)
    lines = summary(result).splitlines()
    assert [line for line in lines if "differences" in line] == ["0 differences"]
    assert lines[-1] == "0 differences"


def test_no_hint_points_at_a_stack_that_has_stopped() -> None:
    result = DemoResult(
        items=10,
        verify=_verified(),
        final_lag=0,
        status_command="ddb-bridge status --config /tmp/gone/bridge.toml",
        dashboard_url="http://127.0.0.1:4321/",
    )
    text = summary(result)
    assert "while it runs" not in text
    assert "/tmp/gone" not in text and "4321" not in text


def test_the_writer_says_the_rate_it_was_asked_for_and_the_rate_it_managed() -> None:
    text = summary(_finished())
    (line,) = [line for line in text.splitlines() if line.startswith("  writer ")]
    assert "670 changes in 44.7 s: 15/s (asked for 150/s: one change at a time" in line
    assert "= 402 updates + 168 deletes + 100 inserts" in text


def test_a_writer_that_kept_its_rate_says_so_without_excuse() -> None:
    from ddb_bridge.demo.summary import WriterCounts, writer_line

    said = writer_line(WriterCounts(updates=300, seconds=2.0, asked_per_s=150))
    assert said == "300 changes in 2.0 s: 150/s (asked for 150/s)"


def test_stream_records_and_kafka_events_add_up_in_the_text() -> None:
    text = summary(_finished())
    assert (
        "  stream records        : 668 (670 changes - 9 deletes of an item already gone, which "
        "write none, + 7 updates re-creating one, which moto records twice)"
    ) in text
    assert (
        "  events in Kafka       : 10,678 = 668 from the stream + 10,010 from the back-fill" in text
    )


def test_stream_records_that_do_not_add_up_are_not_explained_away() -> None:
    result = _finished()
    result.stream_records = 672  # not 670 - 9 + 7: the text must not claim the sum
    text = summary(result)
    assert "670 changes - 9" not in text
    assert "stream records        : 672 (the writer made 670 changes: 9 deletes" in text
    # The topic held fewer stream events than the stream has records: no duplicates.
    assert "published twice" not in text


def test_the_status_lag_is_labelled_with_what_it_counts_and_who_read_it() -> None:
    text = summary(_finished())
    (line,) = [line for line in text.splitlines() if "1,234 -> 56 -> 0" in line]
    assert "not yet applied" in line and "ddb-bridge status" in line


def test_keep_up_hints_list_the_dashboard_and_every_command() -> None:
    from ddb_bridge.demo.summary import keep_up_hints

    text = keep_up_hints(
        _finished(),
        [("where it stands", "ddb-bridge status --config c"), ("verify", "ddb-bridge verify")],
        pid=4242,
    )
    assert "until Ctrl-C or SIGTERM" in text
    assert "  live dashboard        : http://127.0.0.1:4321/" in text
    assert "  where it stands       : ddb-bridge status --config c" in text
    assert "  verify                : ddb-bridge verify" in text
    assert text.splitlines()[-1] == "  stop                  : Ctrl-C, or kill -TERM 4242"


def test_the_total_says_what_it_spans_and_verify_its_own_time() -> None:
    text = summary(_finished())
    assert "  total                 : 99.0 s, from the start to verified" in text
    assert "9,875 items in DynamoDB against 9,875 rows in SQLite, in 12.5 s" in text
