"""How a knowledge asset keeps itself fresh: the AutoUpdateConfig and the poll schedule.

A config is validated once, when the API receives it, and stored normalised: what is stored is
what the API shows. The schedule is computed in the asset's own IANA time zone:

- DAILY / WEEKLY / MONTHLY run at a local wall time. A wall time that does not exist on a
  spring-forward day runs as late as the gap is long (02:30 in a one-hour gap runs at 03:30);
  a wall time that happens twice on a fall-back day runs once, at its first occurrence.
- HOURLY runs at every instant whose local minute is ``pollMinute``, so it stays one hour
  apart in real time across both changes.
- MONTHLY on ``_29`` … ``_31`` runs on the month's last day in shorter months.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

# The config's wire model is shared with the SDK; the schedule below is the server's.
from fruxon_client.models import REQUEST, WEEKDAYS, AutoUpdateConfig
from fruxon_pipelines.validation import field_problems


class InvalidAutoUpdate(ValueError):
    """The auto-update configuration is not valid; the message names the field."""


def parse_auto_update(data: Any, field: str = "autoUpdate") -> AutoUpdateConfig:
    """Validate a request's auto-update config; errors name ``field.member``."""
    if not isinstance(data, dict):
        raise InvalidAutoUpdate(f"{field}: must be an object")
    unknown = [key for key in data if key not in AutoUpdateConfig.model_fields]
    if unknown:
        raise InvalidAutoUpdate(
            "; ".join(f"{field}.{key}: Extra inputs are not permitted" for key in unknown)
        )
    try:
        return AutoUpdateConfig.model_validate(data, context=REQUEST)
    except ValidationError as error:
        raise InvalidAutoUpdate(field_problems(error, field)) from error


def wire_config(stored: dict[str, Any] | None) -> dict[str, Any]:
    """What `autoUpdateConfig` shows: every field, strategy UNSPECIFIED when off."""
    return AutoUpdateConfig.model_validate(stored or {}).model_dump()


# The poll schedule ------------------------------------------------------------------------------


def _at_wall_time(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """The instant of a local wall time: fold 0, so an ambiguous time is its first occurrence
    and a time inside a gap is read with the offset before the gap (it lands after it)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def _runs_on(config: AutoUpdateConfig, day: date) -> bool:
    if config.pollFrequency == "DAILY":
        return True
    if config.pollFrequency == "WEEKLY":
        return WEEKDAYS[day.weekday()] == config.pollDay
    wanted = int((config.pollDayOfMonth or "_1")[1:])
    return day.day == min(wanted, calendar.monthrange(day.year, day.month)[1])


def next_poll_after(config: AutoUpdateConfig, after: datetime) -> datetime:
    """The first scheduled poll strictly after ``after`` (an aware datetime), in UTC."""
    if config.strategy != "POLL" or config.pollFrequency is None:
        raise ValueError("the asset has no poll schedule")
    zone = ZoneInfo(config.timezone or "UTC")
    minute = int(config.pollMinute or 0)
    after = after.astimezone(UTC)
    if config.pollFrequency == "HOURLY":
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        candidate = start + timedelta(minutes=(minute - start.astimezone(zone).minute) % 60)
        # Offsets change by whole hours almost everywhere; where one changed by less in
        # between, walk to the next instant whose local minute matches.
        while candidate.astimezone(zone).minute != minute:
            candidate += timedelta(minutes=1)
        return candidate
    hour = int(config.pollHour or 0)
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(64):  # the longest wait is a month (plus a day either side)
        if _runs_on(config, day):
            candidate = _at_wall_time(day, hour, minute, zone)
            if candidate > after:
                return candidate
        day += timedelta(days=1)
    raise AssertionError("no poll day within two months")  # unreachable: every month has one


def next_poll_ms(config: AutoUpdateConfig, after_ms: int) -> int:
    after = datetime.fromtimestamp(after_ms / 1000, UTC)
    return int(next_poll_after(config, after).timestamp() * 1000)
