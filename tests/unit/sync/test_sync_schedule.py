"""Cron schedules across daylight-saving changes: `0 12 * * *` fires at 12:00 wall-clock time
in the schedule's zone (a `CRON_TZ=` prefix, or the host's zone from `$TZ`) on both change days,
and the day-field rules regsync takes from robfig/cron survive the hand-over to cronsim."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dockyard.sync.schedule import Cron

BERLIN = ZoneInfo("Europe/Berlin")


def _local(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def _wall(moment: float | None) -> str:
    assert moment is not None
    return dt.datetime.fromtimestamp(moment, BERLIN).strftime("%Y-%m-%d %H:%M %Z")


def _cron(text: str) -> Cron:
    schedule = Cron.parse(text)
    assert isinstance(schedule, Cron)
    return schedule


# (the day before, the change day) for 2024: clocks go forward on 31 March, back on 27 October
CHANGE_DAYS = [
    ("2024-03-30 13:00", "2024-03-31 12:00 CEST"),
    ("2024-10-26 13:00", "2024-10-27 12:00 CET"),
]


@pytest.mark.parametrize(("after", "expected"), CHANGE_DAYS)
def test_noon_is_noon_on_change_days_in_the_named_zone(after: str, expected: str) -> None:
    schedule = _cron("CRON_TZ=Europe/Berlin 0 12 * * *")
    assert _wall(schedule.next_after(_local(after))) == expected


@pytest.mark.parametrize(("after", "expected"), CHANGE_DAYS)
def test_noon_is_noon_on_change_days_in_the_hosts_zone(
    monkeypatch: pytest.MonkeyPatch, after: str, expected: str
) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    schedule = _cron("0 12 * * *")
    first = schedule.next_after(_local(after))
    assert _wall(first) == expected
    assert first is not None
    following = schedule.next_after(first)
    assert following is not None
    assert following - first == 24 * 3600  # the day after a change is 24 hours long again


def test_a_time_inside_the_skipped_hour_runs_once_right_after_it() -> None:
    schedule = _cron("CRON_TZ=Europe/Berlin 30 2 * * *")
    spring = schedule.next_after(_local("2024-03-30 12:00"))
    assert _wall(spring) == "2024-03-31 03:00 CEST"  # 02:30 does not exist that night
    autumn = schedule.next_after(_local("2024-10-26 12:00"))
    assert _wall(autumn) == "2024-10-27 02:30 CEST"  # 02:30 happens twice: the first one
    assert autumn is not None
    assert _wall(schedule.next_after(autumn)) == "2024-10-28 02:30 CET"


def test_an_empty_tz_means_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "")
    noon = _cron("0 12 * * *").next_after(dt.datetime(2024, 3, 30, tzinfo=dt.UTC).timestamp())
    assert noon == dt.datetime(2024, 3, 30, 12, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("spec", "expression"),
    [
        ("0 12 * * *", "0 12 * * *"),
        ("*/20 * * * *", "0,20,40 * * * *"),
        ("0 0 13 * 5", "0 0 13 * 5"),  # neither day field is `*`: either matches
        ("0 0 ? * fri", "0 0 * * 5"),  # `?` is `*`; names become numbers
        ("0 0 */1 * 1-5", "0 0 * * 1,2,3,4,5"),  # `*/1` is a star
        ("0 0 1-31 * 5", "0 0 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,"
         "25,26,27,28,29,30,31 * 5"),  # every day OR Friday: not a star, so no AND
        ("@weekly", "0 0 * * 0"),
    ],
)  # fmt: skip
def test_the_expression_cronsim_gets(spec: str, expression: str) -> None:
    assert _cron(spec).expression() == expression


def test_a_day_that_never_comes_never_fires() -> None:
    assert _cron("CRON_TZ=UTC 0 0 30 2 *").next_after(0.0) is None
