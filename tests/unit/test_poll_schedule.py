"""The poll schedule in the asset's own time zone: DST changes, short months, odd offsets."""

from datetime import UTC, datetime, timedelta

import pytest

from fruxon_pipelines.autoupdate import (
    InvalidAutoUpdate,
    next_poll_after,
    parse_auto_update,
    wire_config,
)
from fruxon_pipelines.services.asset_config import check_auto_update


def poll(**fields):
    return parse_auto_update({"strategy": "POLL", **fields})


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticks(config, after: datetime, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        after = next_poll_after(config, after)
        out.append(after)
    return out


def test_daily_wall_time_follows_the_zone_across_spring_forward():
    # New York springs forward on 2026-03-08 at 02:00 → 03:00.
    config = poll(pollFrequency="DAILY", pollHour="9", pollMinute="15", timezone="America/New_York")
    assert ticks(config, utc(2026, 3, 6, 0, 0), 3) == [
        utc(2026, 3, 6, 14, 15),  # EST, UTC-5
        utc(2026, 3, 7, 14, 15),
        utc(2026, 3, 8, 13, 15),  # EDT, UTC-4: still 09:15 on the wall
    ]


def test_a_wall_time_inside_the_gap_runs_once_after_it():
    config = poll(pollFrequency="DAILY", pollHour=2, pollMinute=30, timezone="America/New_York")
    assert ticks(config, utc(2026, 3, 7, 12, 0), 3) == [
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30),
    ]


def test_a_repeated_wall_time_on_fall_back_runs_once():
    # New York falls back on 2026-11-01 at 02:00 → 01:00: 01:30 happens twice.
    config = poll(pollFrequency="DAILY", pollHour=1, pollMinute=30, timezone="America/New_York")
    assert ticks(config, utc(2026, 10, 31, 12, 0), 2) == [
        utc(2026, 11, 1, 5, 30),  # the first 01:30 (EDT)
        utc(2026, 11, 2, 6, 30),  # next day, EST; not 06:30 on the 1st as well
    ]


def test_hourly_stays_an_hour_apart_across_both_changes():
    config = poll(pollFrequency="HOURLY", pollMinute=30, timezone="Europe/Berlin")
    # Berlin falls back on 2026-10-25 at 03:00 CEST → 02:00 CET.
    fall = ticks(config, utc(2026, 10, 24, 23, 0), 4)
    assert fall == [
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 2, 30),
    ]
    # Springs forward on 2026-03-29 at 02:00 → 03:00.
    spring = ticks(config, utc(2026, 3, 28, 23, 50), 3)
    assert [b - a for a, b in zip(spring, spring[1:], strict=False)] == [timedelta(hours=1)] * 2
    assert spring[0] == utc(2026, 3, 29, 0, 30)


def test_hourly_in_a_zone_with_a_45_minute_offset():
    config = poll(pollFrequency="HOURLY", pollMinute=0, timezone="Asia/Kathmandu")  # UTC+05:45
    assert next_poll_after(config, utc(2026, 12, 1, 10, 0)) == utc(2026, 12, 1, 10, 15)


def test_strictly_after_a_tick():
    config = poll(pollFrequency="HOURLY", pollMinute=15)
    assert next_poll_after(config, utc(2026, 1, 1, 10, 15)) == utc(2026, 1, 1, 11, 15)
    assert next_poll_after(config, utc(2026, 1, 1, 10, 14, 59)) == utc(2026, 1, 1, 10, 15)


def test_weekly_on_the_named_day():
    config = poll(
        pollFrequency="WEEKLY",
        pollDay="SUNDAY",
        pollHour=23,
        pollMinute=45,
        timezone="Pacific/Auckland",
    )
    # 2026-12-06 is a Sunday; Auckland is UTC+13 in December.
    assert ticks(config, utc(2026, 12, 1, 0, 0), 2) == [
        utc(2026, 12, 6, 10, 45),
        utc(2026, 12, 13, 10, 45),
    ]


def test_monthly_clamps_to_the_last_day_of_short_months():
    config = poll(pollFrequency="MONTHLY", pollDayOfMonth="_31", pollHour=6)
    assert ticks(config, utc(2027, 1, 31, 6, 0), 4) == [
        utc(2027, 2, 28, 6, 0),
        utc(2027, 3, 31, 6, 0),
        utc(2027, 4, 30, 6, 0),
        utc(2027, 5, 31, 6, 0),
    ]
    leap = poll(pollFrequency="MONTHLY", pollDayOfMonth="_30")
    assert next_poll_after(leap, utc(2028, 2, 1)) == utc(2028, 2, 29)


def test_monthly_in_local_time_can_fall_on_the_previous_utc_day():
    config = poll(pollFrequency="MONTHLY", pollDayOfMonth="_1", pollHour=0, timezone="Asia/Tokyo")
    assert next_poll_after(config, utc(2026, 12, 15)) == utc(2026, 12, 31, 15, 0)


def test_defaults_and_what_is_shown():
    config = poll(pollFrequency="DAILY")
    assert (config.pollHour, config.pollMinute, config.timezone) == ("0", "0", "UTC")
    shown = wire_config(config.model_dump())
    assert shown["strategy"] == "POLL" and shown["pollDay"] is None
    off = wire_config(None)
    assert off["strategy"] == "UNSPECIFIED" and set(off) >= {"pollFrequency", "timezone"}
    webhook = parse_auto_update({"strategy": "WEBHOOK"})
    assert (webhook.provider, webhook.authMode) == (None, "API_KEY")
    check_auto_update("web", webhook)  # the source type's own provider is the default
    assert webhook.provider == "generic"
    for_notion = parse_auto_update({"strategy": "WEBHOOK"})
    check_auto_update("notion", for_notion)
    assert for_notion.provider == "notion"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"strategy": "POLL"}, "autoUpdate.pollFrequency"),
        ({"strategy": "POLL", "pollFrequency": "WEEKLY"}, "autoUpdate.pollDay"),
        ({"strategy": "POLL", "pollFrequency": "MONTHLY"}, "autoUpdate.pollDayOfMonth"),
        ({"strategy": "POLL", "pollFrequency": "DAILY", "pollHour": "24"}, "autoUpdate.pollHour"),
        ({"strategy": "POLL", "pollFrequency": "DAILY", "pollMinute": -1}, "autoUpdate.pollMinute"),
        (
            {"strategy": "POLL", "pollFrequency": "MONTHLY", "pollDayOfMonth": "_32"},
            "autoUpdate.pollDayOfMonth",
        ),
        (
            {"strategy": "POLL", "pollFrequency": "DAILY", "timezone": "Mars/Olympus"},
            "autoUpdate.timezone",
        ),
        ({"strategy": "SOMETIMES"}, "autoUpdate.strategy"),
        ({"strategy": "POLL", "pollFrequency": "FORTNIGHTLY"}, "autoUpdate.pollFrequency"),
        ({"strategy": "WEBHOOK", "colour": "red"}, "autoUpdate.colour"),
    ],
)
def test_invalid_configs_name_the_field(fields, named):
    with pytest.raises(InvalidAutoUpdate) as raised:
        parse_auto_update(fields)
    assert named in str(raised.value)
