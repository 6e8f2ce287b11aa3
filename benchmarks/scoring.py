"""Score a validated submission with the pinned metrics of a benchmark's ``scoring.yaml``.

The metrics come from ``metrics.registry.get_metric`` (this package never imports ``model/``: it
scores any model's videos). One results document is written per submission; the leaderboard
compares results documents only when benchmark, manifest, item set, metric versions and backends
all agree.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kernel import __version__
from kernel.data import candidate_roots
from kernel.errors import UserError
from benchmarks.archive import Limits
from benchmarks.manifest import DataFile, Item, Manifest, benchmark_dir, sha256_bytes
from benchmarks.submission import submission_sha256, validate_submission

log = logging.getLogger(__name__)

RESULTS_FORMAT = "anytalker-benchmark-results/1"
UPSTREAM_AUDIO_HINT = ("the per-speaker tracks are benchmark/audio_left/interact_N_left.wav and "
                       "benchmark/audio_right/interact_N_right.wav of github.com/HKUST-C4G/AnyTalker "
                       "(commit e5490b60dc6add439ff5ecec5bd7559606a78d53); the 16 kHz FLAC copies "
                       "audio_left/*.flac, audio_right/*.flac verify too")
REFERENCE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".mp4")


@dataclass
class MetricSpec:
    name: str
    version: str
    backend: str
    options: dict = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)


@dataclass
class ScoringConfig:
    path: Path
    sha256: str
    benchmark: str
    version: str
    interval_format: str
    ci_level: float
    primary: str
    tie_break: list[str]
    metrics: list[MetricSpec]

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


def load_scoring(path: str | os.PathLike) -> ScoringConfig:
    path = Path(path)
    try:
        data = path.read_bytes()
        doc = yaml.safe_load(data)
    except FileNotFoundError:
        raise UserError(f"{path}: scoring file not found; pass --scoring PATH") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e}); fix the file") from None
    try:
        metrics = [MetricSpec(str(m["name"]), str(m["version"]), str(m["backend"]), dict(m.get("options") or {}),
                              list(m.get("needs") or [])) for m in doc["metrics"]]
        ranking = doc.get("ranking") or {}
        cfg = ScoringConfig(path, sha256_bytes(data), str(doc["benchmark"]), str(doc["version"]),
                            str(doc.get("interval_format", "seconds")), float(doc.get("ci_level", 0.95)),
                            str(ranking.get("primary", metrics[0].name)), list(ranking.get("tie_break") or []),
                            metrics)
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise UserError(f"{path}: malformed scoring file ({type(e).__name__}: {e}); it needs benchmark, version "
                        "and a metrics list of {name, version, backend}") from None
    names = [m.name for m in metrics]
    for n in [cfg.primary, *cfg.tie_break]:
        if n not in names:
            raise UserError(f"{path}: ranking metric {n!r} is not in the metrics list; add it or fix the ranking")
    return cfg


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_options(spec: MetricSpec, scoring_path: Path) -> dict:
    """Metric options with ``${VAR}`` replaced from the environment (weights paths of reference
    backends live outside the repo); an unset variable is a UserError saying what to set."""
    def expand(value):
        if isinstance(value, str):
            def sub(m):
                name = m.group(1)
                if name not in os.environ:
                    raise UserError(f"{scoring_path}: metric {spec.name} needs ${{{name}}} (option value "
                                    f"{value!r}); set {name} to the file's path, e.g. export {name}=/path/to/file")
                return os.environ[name]
            return _ENV_REF.sub(sub, value)
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        if isinstance(value, list):
            return [expand(v) for v in value]
        return value

    return expand(dict(spec.options))


def default_scoring_path(manifest: Manifest) -> Path:
    """scoring.yaml next to the manifest; a single-person manifest without one gets the packaged
    single-person default."""
    from benchmarks.manifest import PACKAGE_DIR, SINGLE_PERSON_FORMAT

    own = manifest.path.parent / "scoring.yaml"
    if not own.is_file() and manifest.format == SINGLE_PERSON_FORMAT:
        return PACKAGE_DIR / "single_person" / "scoring.yaml"
    return own


# --- audio / reference resolution -------------------------------------------------------------------

def audio_root_candidates(manifest: Manifest, audio_root: str | os.PathLike | None) -> list[Path]:
    if audio_root:
        return [Path(audio_root)]
    if manifest.data_root is not None:  # single-person manifests say where their files are
        return [manifest.data_root]
    # the data roots in the kernel resolver's order ($ANYTALKER_DATA, ../shared/data, fetched set)
    return [root / "anytalker_benchmark" for _label, root in candidate_roots()]


def resolve_audio_root(manifest: Manifest, audio_root: str | os.PathLike | None) -> Path:
    candidates = audio_root_candidates(manifest, audio_root)
    for c in candidates:
        if c.is_dir():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise UserError(f"{looked}: benchmark audio folder not found; {UPSTREAM_AUDIO_HINT}. Put them under "
                    f"DIR/audio_left/ and DIR/audio_right/ and pass --audio-dir DIR (or --data ROOT, or set ANYTALKER_DATA "
                    f"so that $ANYTALKER_DATA/anytalker_benchmark is that folder)")


def verify_file(root: Path, f: DataFile, what: str) -> tuple[Path | None, str | None]:
    """First existing copy whose sha256 matches (unpinned copies only need to exist)."""
    from kernel.media import sha256_file

    seen = []
    for rel, sha in f.copies:
        p = root / rel
        if not p.is_file():
            continue
        got = sha256_file(p)
        if not sha or got == sha:
            return p, None
        seen.append(f"{p}: sha256 {got[:12]}... differs from the manifest's {sha[:12]}...")
    if seen:
        return None, "; ".join(seen) + f"; re-fetch the {what} (the file is damaged or a different version)"
    tried = " or ".join(str(root / rel) for rel, _ in f.copies)
    return None, f"{tried}: {what} not found; " + (UPSTREAM_AUDIO_HINT if what == "audio" else "add the file")


def find_reference(reference_root: Path | None, item: Item, manifest: Manifest) -> Path | None:
    if item.reference is not None and manifest.data_root is not None:
        p, err = verify_file(manifest.data_root, item.reference, "reference image")
        if err:
            raise UserError(err)
        return p
    if reference_root is None:
        return None
    for ext in REFERENCE_EXTS:
        p = reference_root / f"{item.item_id}{ext}"
        if p.is_file():
            return p
    return None


def build_samples(manifest: Manifest, items: list[Item], video_root: Path, audio_root: Path,
                  interval_format: str, reference_root: Path | None = None):
    from metrics.base import Sample
    from metrics.intervals import parse_person_intervals

    problems = []
    samples = []
    for it in items:
        audio_paths = []
        for person in it.persons:
            p, err = verify_file(audio_root, person.audio, "audio")
            if err:
                problems.append(err)
            audio_paths.append(str(p) if p else "")
        intervals = [parse_person_intervals(person.speaking_intervals, interval_format) for person in it.persons]
        ref = find_reference(reference_root, it, manifest)
        samples.append(Sample(item_id=it.item_id, video_path=str(video_root / it.video_file),
                              audio_paths=audio_paths, mixed_audio_path=None, speaking_intervals=intervals,
                              interval_format=interval_format, reference_path=str(ref) if ref else None))
    if problems:
        raise UserError(" | ".join(problems))
    return samples


# --- scoring --------------------------------------------------------------------------------------

def _pin_differences(spec: MetricSpec, version: str, backend: str) -> list[str]:
    diffs = []
    if str(version) != spec.version:
        diffs.append(f"{spec.name}: installed metric version {version!r} != pinned {spec.version!r}")
    if backend and backend != spec.backend:
        diffs.append(f"{spec.name}: backend {backend!r} != pinned {spec.backend!r}")
    return diffs


def score_submission(source: str | os.PathLike, manifest: Manifest, scoring: ScoringConfig,
                     item_ids: list[str] | None = None, audio_root: str | os.PathLike | None = None,
                     reference_root: str | os.PathLike | None = None, metric_names: list[str] | None = None,
                     per_sample: bool = True, allow_unpinned: bool = False, progress: bool = False,
                     limits: Limits = Limits()) -> dict:
    """Validate, then run the pinned metrics; returns the results document (JSON-ready dict)."""
    from metrics.registry import get_metric

    if (scoring.benchmark not in ("*", manifest.benchmark) or scoring.version not in ("*", manifest.version)):
        raise UserError(f"{scoring.path}: scores {scoring.benchmark} {scoring.version} but the manifest is "
                        f"{manifest.benchmark} {manifest.version}; pass the matching --scoring file")
    specs = scoring.metrics
    if metric_names:
        unknown = [n for n in metric_names if n not in {m.name for m in specs}]
        if unknown:
            raise UserError(f"{scoring.path}: metric(s) {', '.join(unknown)} not in this benchmark's scoring; "
                            f"choose from {', '.join(m.name for m in specs)}")
        specs = [m for m in specs if m.name in metric_names]
    audio_dir = resolve_audio_root(manifest, audio_root)
    ref_dir = Path(reference_root) if reference_root else None
    if ref_dir is not None and not ref_dir.is_dir():
        raise UserError(f"{ref_dir}: reference folder not found; pass a folder holding <item_id>.png per item")
    with tempfile.TemporaryDirectory(prefix="anytalker-score-") as tmp:
        report, opened = validate_submission(source, manifest, item_ids, tmp, limits)
        if not report.ok:
            raise UserError(f"{source}: submission is not valid, not scoring it:\n{report.render()}")
        items = manifest.select(item_ids)
        digest, video_shas = submission_sha256(opened.root, [it.video_file for it in items])
        samples = build_samples(manifest, items, opened.root, audio_dir, scoring.interval_format, ref_dir)
        results: dict[str, dict] = {}
        not_run: dict[str, str] = {}
        differences: list[str] = []
        for spec in specs:
            metric_samples = samples
            if "reference" in spec.needs and not all(s.reference_path for s in samples):
                not_run[spec.name] = ("no reference frame for some item(s); pass --reference-root DIR holding "
                                      "<item_id>.png (the upstream benchmark/download.py fetches them)")
                continue
            try:
                metric = get_metric(spec.name, **expand_options(spec, scoring.path))
            except (KeyError, ValueError) as e:
                raise UserError(f"{scoring.path}: metric {spec.name!r} cannot be built ({e}); fix its entry") from None
            metric.ci_level = scoring.ci_level
            pre = _pin_differences(spec, metric.version, metric.backend)
            if pre and not allow_unpinned:
                raise UserError(f"{scoring.path}: {'; '.join(pre)}; install the pinned metric or pass "
                                "--allow-unpinned (such results are not ranked with pinned ones)")
            log.info("scoring %s (%s %s) on %d item(s)", spec.name, metric.backend, metric.version,
                     len(metric_samples))
            res = metric.evaluate(metric_samples, progress=progress)
            post = _pin_differences(spec, res.version, res.backend)
            if post and not allow_unpinned:
                raise UserError(f"{scoring.path}: {'; '.join(post)} (the backend that actually loaded); install "
                                "the pinned backend or pass --allow-unpinned")
            differences.extend(d for d in pre + post if d not in differences)
            results[spec.name] = res.to_dict(with_items=per_sample)
            results[spec.name]["pinned"] = {"version": spec.version, "backend": spec.backend}
    meta = report.metadata or {}
    return {
        "format": RESULTS_FORMAT,
        "benchmark": manifest.benchmark,
        "version": manifest.version,
        "manifest_sha256": manifest.sha256,
        "scoring_sha256": scoring.sha256,
        "interval_format": scoring.interval_format,
        "items": [it.item_id for it in items],
        "submission": {
            "source": Path(source).name,
            "sha256": digest,
            "sha256_method": "sha256 of 'submission.json <sha256>\\n' + sorted '<video> <sha256>\\n' lines",
            "model": meta.get("model"),
            "revision": meta.get("revision"),
            "metadata": meta,
            "videos": video_shas,
        },
        "toolkit": {"name": "anytalker-toolkit", "version": __version__},
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "ranking": {"primary": scoring.primary, "tie_break": scoring.tie_break},
        "pinning": {"ok": not differences, "differences": differences},
        "metrics": results,
        "not_run": not_run,
    }


def packaged_scoring(benchmark: str, version: str) -> Path:
    return benchmark_dir(benchmark, version) / "scoring.yaml"
