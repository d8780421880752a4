"""When `dockyard sync server` runs an entry: Go durations (`interval: 60m`) and cron schedules
(`schedule: "15 01 * * *"`) as regsync reads them (Go's `time.ParseDuration`, robfig/cron v3's
standard parser with its `@descriptors`, `@every <duration>` and a `CRON_TZ=`/`TZ=` prefix).

This module reads the schedule, so it accepts exactly what regsync does and says which field is
wrong; when a schedule next fires is left to `cronsim`, which walks the calendar in the zone's
wall-clock time across daylight-saving changes (`0 12 * * *` is 12:00 local on those days too).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`1h15m`, `90s`, `1.5h`, `0`); ValueError saying what is wrong."""
    original = text
    text = text.strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"invalid duration {original!r}: empty")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(
                f"invalid duration {original!r}: expected numbers with units ns, us, ms, s, m, h "
                "(e.g. 90s, 15m, 1h30m)"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """A duration as Go prints it, near enough: `1h30m0s`, `90s` → `1m30s`, `0.5s` → `500ms`."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


class Schedule(Protocol):
    """When to run next, after a moment (both in seconds since the epoch)."""

    def next_after(self, moment: float) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Every:
    """`interval: 60m`, or `schedule: "@every 60m"`: a run every `seconds`."""

    seconds: float

    def next_after(self, moment: float) -> float:
        return moment + self.seconds

    def __str__(self) -> str:
        return f"@every {format_duration(self.seconds)}"


# --- cron --------------------------------------------------------------------------------------

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
# name, lowest, highest, names
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron schedule (minute hour day-of-month month day-of-week) in `zone`
    (None: the local time zone). As in robfig/cron, when either day field is `*` (or `?`) a
    day must match both, otherwise either."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month or day of week is `*`: both must match
    zone: str | None = None

    @classmethod
    def parse(cls, text: str) -> Cron | Every:
        """Parse a schedule as regsync does; ValueError saying which field is wrong."""
        spec = text.strip()
        zone: str | None = None
        if spec.startswith(("CRON_TZ=", "TZ=")):
            head, _, spec = spec.partition(" ")
            zone = head.split("=", 1)[1]
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"invalid schedule {text!r}: unknown time zone {zone!r}") from None
            spec = spec.strip()
        if spec.startswith("@every"):
            seconds = parse_duration(spec[len("@every") :].strip())
            if seconds <= 0:
                raise ValueError(f"invalid schedule {text!r}: @every needs a positive duration")
            return Every(seconds)
        if spec.startswith("@"):
            expanded = _DESCRIPTORS.get(spec.lower())
            if expanded is None:
                raise ValueError(
                    f"invalid schedule {text!r}: unknown descriptor {spec!r} (use "
                    + ", ".join(sorted(_DESCRIPTORS))
                    + ", or @every <duration>)"
                )
            spec = expanded
        parts = spec.split()
        if len(parts) != 5:
            raise ValueError(
                f"invalid schedule {text!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week), got {len(parts)}"
            )
        sets: list[frozenset[int]] = []
        stars: list[bool] = []
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
            try:
                values, star = _field(part, low, high, names, allow_question=name.startswith("day"))
            except ValueError as exc:
                raise ValueError(f"invalid schedule {text!r}: {name} {part!r}: {exc}") from None
            sets.append(values)
            stars.append(star)
        minutes, hours, days, months, weekdays = sets
        return cls(
            text, minutes, hours, days, months, weekdays, any_day=stars[2] or stars[4], zone=zone
        )

    def next_after(self, moment: float) -> float | None:
        """The first minute after `moment` the schedule names, in its zone's wall-clock time;
        None if it never fires (say, `0 0 30 2 *`)."""
        zone = ZoneInfo(self.zone) if self.zone else _local_zone()
        start = dt.datetime.fromtimestamp(moment, zone)
        try:
            return next(CronSim(self.expression(), start)).timestamp()
        except (CronSimError, StopIteration):
            return None

    def expression(self) -> str:
        """The schedule as five plain cron fields (lists of values, or `*`) for `cronsim`,
        built from what this module parsed, so both agree on every value. A day field is
        `*` exactly when it was one (robfig's rule that a day then must match both fields
        is cronsim's rule for a field starting with `*`)."""
        day_star = (
            self.any_day and self.days == _full(_FIELDS[2]),
            self.any_day and self.weekdays == _full(_FIELDS[4]),
        )
        return " ".join(
            (
                _values(self.minutes, _FIELDS[0]),
                _values(self.hours, _FIELDS[1]),
                "*" if day_star[0] else _values(self.days, None),
                _values(self.months, _FIELDS[3]),
                "*" if day_star[1] else _values(self.weekdays, None),
            )
        )

    def __str__(self) -> str:
        return self.text


def _full(field: tuple[str, int, int, dict[str, int]]) -> frozenset[int]:
    return frozenset(range(field[1], field[2] + 1))


def _values(values: frozenset[int], field: tuple[str, int, int, dict[str, int]] | None) -> str:
    """A cron field naming `values`: `*` when they are all of `field`'s, else a list."""
    if field is not None and values == _full(field):
        return "*"
    return ",".join(str(value) for value in sorted(values))


def _local_zone() -> dt.tzinfo:
    """The host's time zone with its daylight-saving rules, as Go's `time.Local` finds it:
    `$TZ` (empty: UTC), else /etc/localtime; a fixed offset only when neither can be read."""
    name = os.environ.get("TZ")
    try:
        if name is not None:
            return ZoneInfo(name.removeprefix(":")) if name else dt.UTC
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return dt.datetime.now().astimezone().tzinfo or dt.UTC


def _number(text: str, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number" + (" or a name" if names else ""))
    return int(text)


def _field(
    text: str, low: int, high: int, names: dict[str, int], *, allow_question: bool
) -> tuple[frozenset[int], bool]:
    """The values a cron field names, and whether it is a bare `*` (or `?`)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        if not item:
            raise ValueError("empty list item")
        range_text, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} must be a positive number")
            step = int(step_text)
        if range_text == "*" or (allow_question and range_text == "?"):
            start, end = low, high
            star = star or step == 1
        else:
            first, dash, last = range_text.partition("-")
            start = _number(first, names)
            # `5/15` means 5 to the highest value, every 15 (robfig/cron)
            end = _number(last, names) if dash else (high if slash else start)
        if not low <= start <= high or not low <= end <= high:
            raise ValueError(f"values must be within {low}-{high}")
        if start > end:
            raise ValueError(f"range {start}-{end} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse_schedule(text: str) -> Cron | Every:
    """A `schedule:` value: cron fields, a descriptor, or `@every <duration>`."""
    return Cron.parse(text)


def seconds_until(schedule: Schedule, now: float) -> float:
    """How long from `now` until `schedule` next fires (inf when it never does)."""
    upcoming = schedule.next_after(now)
    return math.inf if upcoming is None else max(0.0, upcoming - now)
