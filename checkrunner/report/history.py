"""`checkrun history`: a series shown as a table with a sparkline, or as JSON.

Host, play, check and metric names come from input files and are untrusted text: every one
is printed through safe_text.
"""

from __future__ import annotations

import json
import time
from typing import Any

from checkrunner.report.formatting import format_value
from checkrunner.safe_text import escape_unprintable_json, one_line
from checkrunner.state.history import Sample, SeriesKey

BLOCKS = "▁▂▃▄▅▆▇█"
PLAIN_LEVELS = "_.-=+*#@"  # the same eight levels where the output cannot show the blocks
SPARK_WIDTH = 60  # characters: a sparkline fits a terminal line
# A window holding more raw samples than this is shown one row per hour (min/avg/max/count):
# the table grows with the window's hours, not with how often the check ran.
TABLE_SAMPLES = 240


def sparkline(values: list[float | None], unicode: bool = True, width: int = SPARK_WIDTH) -> str:
    """One character per value, its height scaled between the series' min and max; a gap
    (no value) is a space. More values than `width`: each character is the mean of its
    share of them, so the line fits."""
    levels = BLOCKS if unicode else PLAIN_LEVELS
    values = _narrowed_to(values, width)
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    return "".join(
        " "
        if value is None
        else levels[0 if span == 0 else round((value - low) / span * (len(levels) - 1))]
        for value in values
    )


def _narrowed_to(values: list[float | None], width: int) -> list[float | None]:
    if len(values) <= width:
        return values
    narrowed: list[float | None] = []
    for column in range(width):
        share = values[column * len(values) // width : (column + 1) * len(values) // width]
        present = [v for v in share if v is not None]
        narrowed.append(sum(present) / len(present) if present else None)
    return narrowed


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _value(value: float | None, unit: str) -> str:
    """Scaled to its unit as every report shows it (1.50 GiB, 12.5ms, 93.2%); '-' for none."""
    return "-" if value is None else format_value(value, unit)


def series_title(key: SeriesKey) -> str:
    metric = f" · {one_line(key.metric)}" if key.metric else ""
    return (
        f"{one_line(key.check.host)} · play {one_line(key.check.play)} · "
        f"{one_line(key.check.check)}{metric}"
    )


def table(key: SeriesKey, samples: list[Sample], unicode: bool = True) -> list[str]:
    """The lines for one series: title, sparkline, then time / value / status rows (UTC)."""
    lines = [series_title(key)]
    if not samples:
        return [*lines, "  no samples in this window"]
    lines.append("  " + sparkline([s.value for s in samples], unicode))
    lines.append(f"  {'time (UTC)':<19}  {'value':<48}  status")
    unit = one_line(key.unit)
    for sample in samples:
        if sample.hourly:
            value = (
                f"min {_value(sample.minimum, unit)} avg {_value(sample.value, unit)} "
                f"max {_value(sample.maximum, unit)} count {sample.count}"
            )
        else:
            value = _value(sample.value, unit)
        lines.append(f"  {_when(sample.at):<19}  {value:<48}  {one_line(sample.status)}")
    return lines


def as_json(found: list[tuple[SeriesKey, list[Sample]]], since: float) -> str:
    document: dict[str, Any] = {
        "since": since,
        "series": [
            {
                "host": key.check.host,
                "play": key.check.play,
                "check": key.check.check,
                "metric": key.metric,
                "unit": key.unit,
                "samples": [_sample_json(sample) for sample in samples],
            }
            for key, samples in found
        ],
    }
    # Not indented: json's C encoder writes 69,120 samples (8 days at 10 s) about five times
    # faster than its indenting Python one.
    return escape_unprintable_json(json.dumps(document, ensure_ascii=False))


def _sample_json(sample: Sample) -> dict[str, Any]:
    data: dict[str, Any] = {"at": sample.at, "status": sample.status}
    if sample.hourly:
        data.update(
            hourly=True,
            min=sample.minimum,
            avg=sample.value,
            max=sample.maximum,
            count=sample.count,
        )
    else:
        data["value"] = sample.value
    return data
