"""The `local` root: wall-clock fields of `now` in the person's time zone.

Zones come from the standard zoneinfo database; an unknown or missing zone
means UTC.  ZoneInfo objects are cached because building one reads a file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NO_FIELDS: tuple[None, None, None, None] = (None, None, None, None)
MINUTE_MS = 60_000
DAY_MS = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday

# Zone names come from visitors' requests, so caches must not grow without bound.
_MAX_CACHED_ZONES = 1024
_zones: dict[str, tzinfo] = {}


def zone_named(name: object) -> tzinfo:
    """The zone called `name`, or UTC when it is missing or not a real zone."""
    if name.__class__ is not str or not name:
        return UTC
    zone = _zones.get(name)  # type: ignore[arg-type]
    if zone is None:
        try:
            zone = ZoneInfo(name)  # type: ignore[arg-type]
        except Exception:  # zoneinfo raises several kinds for bad keys
            zone = UTC
        if len(_zones) >= _MAX_CACHED_ZONES:
            _zones.clear()
        _zones[name] = zone  # type: ignore[index]
    return zone


def local_fields(now_ms: object, zone: tzinfo) -> tuple:
    """(hour, minute, weekday, date) of `now_ms` in `zone`; all None if `now_ms` is unusable."""
    if now_ms.__class__ is not int and now_ms.__class__ is not float:
        return NO_FIELDS
    try:
        moment = datetime.fromtimestamp(now_ms / 1000, zone)  # type: ignore[operator]
    except (OverflowError, ValueError, OSError):
        return NO_FIELDS
    return (moment.hour, moment.minute, WEEKDAYS[moment.weekday()], moment.date().isoformat())


class _ZoneState:
    """A stretch of time in which a zone's UTC offset is known not to change."""

    __slots__ = ("start_ms", "end_ms", "offset_ms", "latest")

    def __init__(self, start_ms: int, end_ms: int, offset_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.offset_ms = offset_ms
        # (local minute, fields), replaced as one object so concurrent readers
        # never see the fields of one minute paired with another.
        self.latest: tuple[int | None, tuple] = (None, NO_FIELDS)


class LocalTimeCache:
    """Fast local_fields for integer millisecond clocks.

    Per zone it remembers the UTC offset for the current 15-minute stretch of
    UTC (checked at both ends, so a change of offset inside it is never
    missed) and the fields for the current local minute, so a busy edge does
    date arithmetic about once a minute per zone instead of once per event.
    """

    STRETCH_MS = 15 * MINUTE_MS

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[object, _ZoneState] = {}

    def fields(self, now_ms: object, zone_name: object) -> tuple:
        if now_ms.__class__ is not int:
            return local_fields(now_ms, zone_named(zone_name))
        key = zone_name if zone_name.__class__ is str else None
        state = self._states.get(key)
        if state is None or not state.start_ms <= now_ms < state.end_ms:  # type: ignore[operator]
            state = self._stretch(key, now_ms)  # type: ignore[arg-type]
            if state is None:
                return local_fields(now_ms, zone_named(zone_name))
        local_ms = now_ms + state.offset_ms  # type: ignore[operator]
        minute = local_ms // MINUTE_MS
        latest = state.latest
        if latest[0] == minute:
            return latest[1]
        days = local_ms // DAY_MS
        try:
            day = date.fromordinal(EPOCH_ORDINAL + days).isoformat()
        except (ValueError, OverflowError):
            return NO_FIELDS
        fields = (
            (local_ms // 3_600_000) % 24,
            minute % 60,
            WEEKDAYS[(days + EPOCH_WEEKDAY) % 7],
            day,
        )
        state.latest = (minute, fields)
        return fields

    def _stretch(self, key: object, now_ms: int) -> _ZoneState | None:
        zone = zone_named(key)
        start_ms = now_ms - now_ms % self.STRETCH_MS
        end_ms = start_ms + self.STRETCH_MS
        try:
            first = datetime.fromtimestamp(start_ms / 1000, zone).utcoffset()
            last = datetime.fromtimestamp((end_ms - 1) / 1000, zone).utcoffset()
        except (OverflowError, ValueError, OSError):
            return None
        if first is None or first != last:
            return None  # the offset changes inside this stretch: compute each time
        offset_ms = (first.days * 86_400 + first.seconds) * 1000 + first.microseconds // 1000
        state = _ZoneState(start_ms, end_ms, offset_ms)
        if len(self._states) >= _MAX_CACHED_ZONES:
            self._states.clear()
        self._states[key] = state
        return state
