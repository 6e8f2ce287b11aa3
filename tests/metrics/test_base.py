"""Metric base: aggregation, bootstrap CI, failed items, registry, JSON output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from metrics import ItemResult, Metric, MetricSkip, Sample, bootstrap_ci, get_metric, list_metrics

EXISTING = __file__  # stands in for a video: the table metric never opens it


class _TableMetric(Metric):
    """Scores items from a table; ids starting with 'skip' / 'boom' fail."""

    name = "table"
    version = "0"
    backend = "table"
    backend_version = "1"
    params = {"scale": 1.0}

    def __init__(self, table, **options):
        super().__init__(**options)
        self.table = table

    def score(self, sample: Sample) -> ItemResult:
        if sample.item_id.startswith("skip"):
            raise MetricSkip("no_face", "nothing to score")
        if sample.item_id.startswith("boom"):
            raise RuntimeError("decoder exploded")
        return ItemResult(sample.item_id, True, self.table[sample.item_id] * self.params["scale"])


def test_failed_items_are_excluded_and_counted_with_their_reason():
    rng = np.random.default_rng(1)
    table = {f"v{i}": float(x) for i, x in enumerate(rng.normal(3.0, 1.0, 40))}
    samples = [Sample(k, EXISTING) for k in table]
    samples += [Sample("skip1", EXISTING), Sample("skip2", EXISTING), Sample("boom", EXISTING),
                Sample("nopath", ""), Sample("ghost", "/nonexistent/ghost.mp4")]
    r = _TableMetric(table).evaluate(samples)
    assert r.n_scored == 40 and r.n_failed == 5
    assert r.failures == {"no_face": 2, "exception": 1, "missing_input": 1, "not_found": 1}
    assert r.value == pytest.approx(np.mean(list(table.values())))  # never averaged with 0 / -1
    assert r.ci_low < r.value < r.ci_high
    assert r.ci_high - r.ci_low < 1.5  # ~ 2 * 1.96 / sqrt(40)
    failed = [it for it in r.items if not it.ok]
    assert all(math.isnan(it.value) and it.reason for it in failed)
    assert "decoder exploded" in next(it for it in failed if it.item_id == "boom").components["detail"]

    d = r.to_dict()
    json.dumps(d, allow_nan=False)  # NaN written as null
    assert d["items"][-1]["value"] is None
    assert "items" not in r.to_dict(with_items=False)
    assert d["backend"] == "table" and d["backend_version"] == "1"


def test_all_items_failed_gives_nan_not_zero():
    r = _TableMetric({}).evaluate([Sample("skip", EXISTING)])
    assert r.n_scored == 0 and math.isnan(r.value) and math.isnan(r.ci_low)


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(100):
        lo, hi = bootstrap_ci(rng.normal(5.0, 2.0, 30), level=0.9, n_boot=500, seed=int(rng.integers(1e9)))
        hits += lo <= 5.0 <= hi
    assert 78 <= hits <= 97  # nominal 90 %; BCa at n = 30 is close to it
    # one item has no spread to resample: no interval (written as null), not [v, v]
    assert all(math.isnan(x) for x in bootstrap_ci([2.5]))


def test_confidence_interval_records_its_method():
    from metrics.base import confidence_interval

    assert confidence_interval([1.0, 2.0, 4.0, 3.0, 5.0])[2] == "BCa"
    assert confidence_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, "percentile")  # BCa undefined without spread
    assert confidence_interval([])[2] is None


def test_options_override_params_and_unknown_options_are_rejected():
    m = _TableMetric({"a": 2.0}, scale=3.0)
    assert m.evaluate([Sample("a", EXISTING)]).value == 6.0
    assert m.evaluate([Sample("a", EXISTING)]).params["scale"] == 3.0
    with pytest.raises(ValueError, match="unknown option"):
        _TableMetric({}, sclae=2)


def test_registry_lists_every_metric_with_its_direction():
    rows = {r["name"]: r for r in list_metrics()}
    assert set(rows) == {"sync_c", "sync_d", "sync_c_star", "identity", "interactivity", "fid", "fvd"}
    assert rows["sync_d"]["higher_is_better"] is False and rows["fid"]["higher_is_better"] is False
    assert rows["interactivity"]["higher_is_better"] is True
    assert "landmark" in rows["sync_c"]["backends"]
    with pytest.raises(KeyError, match="unknown metric"):
        get_metric("psnr")


def test_progress_bar_counts_videos_and_failures_on_stderr(capsys):
    samples = [Sample("v0", EXISTING), Sample("skip1", EXISTING), Sample("v1", EXISTING)]
    _TableMetric({"v0": 1.0, "v1": 2.0}).evaluate(samples, progress=True)
    err = capsys.readouterr().err
    assert "table" in err and "3/3" in err and "ok=2" in err and "failed=1" in err
    _TableMetric({"v0": 1.0, "v1": 2.0}).evaluate(samples, progress=False)
    assert capsys.readouterr().err == ""
