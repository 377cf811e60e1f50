"""Raw measurements + thresholds -> status. Knows nothing about SSH."""

from checkrunner.evaluate.evaluate import (
    MetricThresholds,
    evaluate_check,
    skipped_result,
    unknown_result,
)

__all__ = ["MetricThresholds", "evaluate_check", "skipped_result", "unknown_result"]
