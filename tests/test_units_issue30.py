"""Unit tests of issue 30's pure parts: cutting records out of a page, values made storable,
the failing units' intervals."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sources.common import hostile_values as hv
from sources.common.bad_input import cut_records
from sources.common.failing_units import FailingUnits, retry_interval

NOW = datetime(2026, 12, 1, 8, tzinfo=timezone.utc)


def test_cut_records_takes_the_outermost_list_items_and_keeps_the_rest_in_order():
    page = {"results": {"csvs": [{"_id": "a"}, {"_id": "b", "x": {"deep": 1}},
                                 {"_id": "c"}, {"_id": "d", "y": [1]}], "count": 4}}
    cut = cut_records(page, [(("results", "csvs", 1, "x", "deep"), "deep"),
                             (("results", "csvs", 3, "y", 0), "wide"),
                             (("results", "csvs", 1, "x"), "again")])
    assert [(r["_id"], why) for r, why in cut] == [("b", "deep"), ("d", "wide")]
    assert [r["_id"] for r in page["results"]["csvs"]] == ["a", "c"]


def test_cut_records_refuses_a_bound_outside_any_list():
    assert cut_records({"results": {"x": 1}}, [(("results", "x"), "wide")]) is None


def test_hostile_values_are_made_storable():
    counts: Counter[str] = Counter()
    record = {"": 1, " ": 2, "_empty_key": 3, "n": 2 ** 70, "s": "a\x00b", "ok": 5}
    hv.rename_blank_keys(record, counts)
    for key, value in list(record.items()):
        if isinstance(value, int):
            hv.fix_number(record, key, value, counts)
        elif isinstance(value, str):
            hv.fix_text(record, key, value, counts)
    assert record == {"_empty_key": 3, "_empty_key_2": 1, "_blank_key": 2,
                      "n_as_text": str(2 ** 70), "s": "a\u2400b", "ok": 5}
    assert hv.parse_leniently(b'{"n": 123456789012345678901234}') == {
        "n": 123456789012345678901234}


def test_retry_intervals_double_up_to_a_day():
    assert [retry_interval(n) for n in (1, 2)] == [None, None]
    assert [retry_interval(n) for n in (3, 4, 5)] == [timedelta(hours=h) for h in (1, 2, 4)]
    assert retry_interval(40) == timedelta(hours=24)


def test_a_unit_counts_once_per_run_and_ends_with_a_resolved_row():
    state: dict = {}
    units = FailingUnits(state, NOW)
    units.failed("job", "j1", "HTTP 500")
    units.failed("job", "j1", "HTTP 500")  # the same run
    assert state["failing"]["job:j1"]["n"] == 1
    later = FailingUnits(state, NOW + timedelta(hours=1))
    assert later.ended("job", "j1", "answered")
    assert "failing" not in state  # a run without failures leaves the state as it was
    assert later.rows[-1]["resolution"] == "answered"
