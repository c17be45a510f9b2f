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
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from fruxon_pipelines.validation import field_problems, matching

Strategy = Literal["UNSPECIFIED", "WEBHOOK", "POLL"]
PollFrequency = Literal["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]
Weekday = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]
# How a webhook delivery proves itself: the URL alone (it holds an unguessable id), or an
# HMAC-SHA256 signature of the body as well.
WebhookAuthMode = Literal["API_KEY", "HMAC"]
DAY_OF_MONTH = re.compile(r"^_([1-9]|[12][0-9]|3[01])$")


class InvalidAutoUpdate(ValueError):
    """The auto-update configuration is not valid; the message names the field."""


def _number_text(value: Any, low: int, high: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a number from {low} to {high}")
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"must be a number from {low} to {high}")
    return str(int(text))


class AutoUpdateConfig(BaseModel):
    """The wire shape of `autoUpdateConfig`; `authMode` is our extension (default API_KEY)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "UNSPECIFIED"
    provider: str | None = None
    externalContext: str | None = None
    filter: str | None = None
    pollFrequency: PollFrequency | None = None
    pollDay: Weekday | None = None
    pollDayOfMonth: Annotated[str | None, matching(DAY_OF_MONTH, "must be one of _1 … _31")] = None
    pollHour: str | None = None
    pollMinute: str | None = None
    timezone: str | None = None
    authMode: WebhookAuthMode | None = None

    @field_validator("pollHour", mode="before")
    @classmethod
    def _hour(cls, value: Any) -> str | None:
        return _number_text(value, 0, 23)

    @field_validator("pollMinute", mode="before")
    @classmethod
    def _minute(cls, value: Any) -> str | None:
        return _number_text(value, 0, 59)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if len(value) > 64:
                raise ValueError(value)
            ZoneInfo(value)
        # A directory of the zone database ("America") or an odd path raises OSError.
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from error
        return value

    @model_validator(mode="after")
    def _complete(self) -> AutoUpdateConfig:
        if self.strategy == "POLL":
            needs = {"WEEKLY": "pollDay", "MONTHLY": "pollDayOfMonth"}
            if self.pollFrequency is None:
                raise ValueError("pollFrequency: required when strategy is POLL")
            missing = needs.get(self.pollFrequency)
            if missing and getattr(self, missing) is None:
                raise ValueError(f"{missing}: required when pollFrequency is {self.pollFrequency}")
            self.pollMinute = self.pollMinute or "0"
            if self.pollFrequency != "HOURLY":
                self.pollHour = self.pollHour or "0"
            self.timezone = self.timezone or "UTC"
        if self.strategy == "WEBHOOK":
            # The provider defaults to the source type's own (check_auto_update).
            self.authMode = self.authMode or "API_KEY"
        return self

    @property
    def enabled(self) -> bool:
        return self.strategy != "UNSPECIFIED"


def parse_auto_update(data: Any, field: str = "autoUpdate") -> AutoUpdateConfig:
    """Validate a request's auto-update config; errors name ``field.member``."""
    if not isinstance(data, dict):
        raise InvalidAutoUpdate(f"{field}: must be an object")
    try:
        return AutoUpdateConfig.model_validate(data)
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
