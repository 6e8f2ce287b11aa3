"""Metrics for generated talking videos: Sync-C/Sync-D, Sync-C*, identity, Interactivity, FID/FVD.

``get_metric(name, **options).evaluate(samples)`` -> ``MetricResult`` (see ``metrics.base``).
"""

from metrics.base import ItemResult, Metric, MetricResult, MetricSkip, Sample, bootstrap_ci
from metrics.registry import get_metric, list_metrics

__all__ = ["ItemResult", "Metric", "MetricResult", "MetricSkip", "Sample", "bootstrap_ci", "get_metric",
           "list_metrics"]
