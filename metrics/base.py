"""Metric API: one ``Sample`` per generated video, one ``ItemResult`` per scored item, one
``MetricResult`` per metric over a set of samples.

Rules every metric follows:
- a failed item is never scored 0 or -1: it is excluded from the aggregate and counted in
  ``n_failed`` with its reason (``failures`` histogram);
- every result names the backend and backend version that produced it (numbers from different
  backends are not comparable);
- the aggregate carries a bootstrap confidence interval over items (``scipy.stats.bootstrap``,
  BCa; the method is recorded; null when fewer than 2 items were scored).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

log = logging.getLogger(__name__)

NAN = float("nan")


class MetricSkip(Exception):
    """Raised by ``Metric.score`` when an item cannot be scored; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Sample:
    item_id: str
    video_path: str
    audio_paths: list[str] | None = None  # per person, left -> right (benchmark per-speaker tracks)
    mixed_audio_path: str | None = None  # one mixed track (default: the video's own audio)
    speaking_intervals: list[list[tuple[float, float]]] | None = None  # per person left -> right, s
    interval_format: str = "seconds"  # or "timecode30" (how the intervals were read)
    reference_path: str | None = None  # reference image / video (identity, FID/FVD real set)


@dataclass
class ItemResult:
    item_id: str
    ok: bool
    value: float = NAN  # NaN when not ok (and for set-level metrics such as FID, whose value is per set)
    components: dict = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value"] = _json_float(self.value)
        d["components"] = _jsonable(self.components)
        return d


@dataclass
class MetricResult:
    name: str
    version: str
    backend: str
    backend_version: str
    higher_is_better: bool
    value: float
    ci_low: float
    ci_high: float
    ci_level: float
    n_scored: int
    n_failed: int
    failures: dict[str, int]
    params: dict
    items: list[ItemResult]
    ci_method: str | None = None  # "BCa" or "percentile" (scipy.stats.bootstrap); None: no interval (n < 2)

    def to_dict(self, with_items: bool = True) -> dict:
        d = {
            "name": self.name,
            "version": self.version,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "higher_is_better": self.higher_is_better,
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "ci_level": self.ci_level,
            "ci_method": self.ci_method,
            "n_scored": self.n_scored,
            "n_failed": self.n_failed,
            "failures": dict(self.failures),
            "params": _jsonable(self.params),
        }
        if with_items:
            d["items"] = [it.to_dict() for it in self.items]
        return d


def _json_float(x) -> float | None:
    """JSON has no NaN: missing numbers are written as null."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_float(obj)
    return obj


def confidence_interval(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0, stat=np.mean,
                        method: str = "BCa") -> tuple[float, float, str | None]:
    """Bootstrap CI of ``stat`` over items with ``scipy.stats.bootstrap``: (low, high, method used).

    Fewer than 2 items: no interval (NaN, NaN, None), written as null. BCa is the default; when it
    is undefined (all values equal, or a jackknife without spread) the percentile interval is used
    and the method says so.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return NAN, NAN, None
    if np.ptp(v) == 0:  # every resample has the same statistic: the interval is that point
        x = float(stat(v))
        return x, x, "percentile"
    vectorized = stat in (np.mean, np.median)

    def run(m: str):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined BCa interval comes back as NaN: handled below
            return bootstrap((v,), stat, n_resamples=int(n_boot), confidence_level=level, method=m,
                             vectorized=vectorized, rng=np.random.default_rng(seed)).confidence_interval

    ci, used = run(method), method
    if not (np.isfinite(ci.low) and np.isfinite(ci.high)) and method != "percentile":
        ci, used = run("percentile"), "percentile"
    return float(ci.low), float(ci.high), used


def bootstrap_ci(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0, stat=np.mean,
                 method: str = "BCa") -> tuple[float, float]:
    """(low, high) of :func:`confidence_interval`; NaN when there are fewer than 2 items."""
    lo, hi, _ = confidence_interval(values, level, n_boot, seed, stat, method)
    return lo, hi


class Metric:
    """Base class. Subclasses set the class attributes and implement ``score``.

    ``params`` holds the protocol knobs (recorded in every result); constructor keyword options
    override them. ``backend``/``backend_version`` are set by the subclass from the backend it
    actually loaded.
    """

    name: str = ""
    version: str = "0"
    higher_is_better: bool = True
    requires: tuple[str, ...] = ("video_path",)
    backend: str = ""
    backend_version: str = ""
    backends: tuple[str, ...] = ()
    description: str = ""
    params: dict = {}
    ci_level: float = 0.95
    n_boot: int = 2000

    def __init__(self, **options):
        merged = dict(type(self).params)
        unknown = set(options) - set(merged)
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown option(s) {sorted(unknown)}; "
                             f"known: {sorted(merged)}")
        merged.update(options)
        self.params = merged

    # --- per item -----------------------------------------------------------------------------
    def score(self, sample: Sample) -> ItemResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_requires(self, sample: Sample) -> None:
        import os

        for attr in self.requires:
            if getattr(sample, attr, None) in (None, "", []):
                raise MetricSkip("missing_input", f"sample {sample.item_id!r} has no {attr}")
        import stat

        paths = [sample.video_path, sample.mixed_audio_path, *(sample.audio_paths or [])]
        for p in paths:
            if p and not os.path.exists(p):
                raise MetricSkip("not_found", f"{p} does not exist (or is a broken link)")
            # a folder named x.mp4, a FIFO (opening it would block), a device: refused unopened
            if p and not stat.S_ISREG(os.stat(p).st_mode):
                raise MetricSkip("not_a_file", f"{p} is not a regular file")

    # --- over items -------------------------------------------------------------------------
    def aggregate(self, items: list[ItemResult]) -> MetricResult:
        ok = [it for it in items if it.ok and not math.isnan(it.value)]
        values = [it.value for it in ok]
        value = float(np.mean(values)) if values else NAN
        lo, hi, method = confidence_interval(values, self.ci_level, self.n_boot)
        return self._result(items, value, lo, hi, ci_method=method)

    def _result(self, items: list[ItemResult], value: float, lo: float, hi: float,
                extra_params: dict | None = None, ci_method: str | None = None) -> MetricResult:
        failed = [it for it in items if not it.ok]
        failures = Counter(it.reason or "unknown" for it in failed)
        params = dict(self.params)
        if extra_params:
            params.update(extra_params)
        return MetricResult(
            name=self.name, version=self.version, backend=self.backend,
            backend_version=self.backend_version, higher_is_better=self.higher_is_better,
            value=value, ci_low=lo, ci_high=hi, ci_level=self.ci_level,
            n_scored=len(items) - len(failed), n_failed=len(failed), failures=dict(failures),
            params=params, items=list(items), ci_method=ci_method if math.isfinite(lo) else None,
        )

    def score_safe(self, sample: Sample) -> ItemResult:
        """Adapter for one item: exceptions become a failed item with a reason, never a crash."""
        try:
            self.check_requires(sample)
            res = self.score(sample)
        except MetricSkip as e:
            return ItemResult(sample.item_id, False, NAN, {"detail": e.detail}, e.reason)
        except MemoryError as e:
            return ItemResult(sample.item_id, False, NAN, {"detail": str(e)[:500]}, "out_of_memory")
        except Exception as e:  # noqa: BLE001 - one bad item must not stop the set
            log.warning("%s: item %s failed: %s", self.name, sample.item_id, e, exc_info=log.isEnabledFor(logging.DEBUG))
            reason = _reason_from_exception(e)
            return ItemResult(sample.item_id, False, NAN, {"detail": f"{type(e).__name__}: {e}"[:500]}, reason)
        if not res.ok and not res.reason:
            res.reason = "unknown"
        if not res.ok:
            res.value = NAN
        return res

    def evaluate(self, samples: list[Sample], progress: bool = False) -> MetricResult:
        items = []
        t0 = time.perf_counter()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(samples), desc=self.name, unit="video", dynamic_ncols=True)
        try:
            for s in samples:
                items.append(self.score_safe(s))
                if bar is not None:
                    n_failed = sum(1 for it in items if not it.ok)
                    bar.set_postfix(ok=len(items) - n_failed, failed=n_failed, refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        res = self.aggregate(items)
        res.params.setdefault("wall_s", round(time.perf_counter() - t0, 3))
        return res


def _reason_from_exception(e: Exception) -> str:
    from curation.media import MediaError

    if isinstance(e, MediaError):
        return "decode_error"
    if isinstance(e, FileNotFoundError):
        return "not_found"
    return "exception"
