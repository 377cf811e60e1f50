"""The JSON report: RunResult.to_dict(), pretty-printed. Its schema is docs/json-report.md."""

from __future__ import annotations

import json
import math
from typing import Any

from checkrunner.report.base import Reporter
from checkrunner.results import RunResult
from checkrunner.safe_text import escape_unprintable_json


class JsonReporter(Reporter):
    name = "json"

    def render(self, run: RunResult) -> str:
        document = finite_numbers(run.to_dict())
        # default=str: a fact a module returned that JSON cannot hold must not cost the report.
        text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        # json.dumps escapes C0 controls only: a C1 or bidi control from a target would
        # still act on a terminal that shows the report.
        return escape_unprintable_json(text) + "\n"


def finite_numbers(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON has no way to write them and
    json.dumps would emit tokens (NaN, Infinity) that strict parsers reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_numbers(item) for item in value]
    return value
