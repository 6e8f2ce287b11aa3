"""``anytalker metrics``: list the metrics and score a directory of generated videos.

    anytalker metrics ls
    anytalker metrics run --metric interactivity --metric sync_c_star --videos DIR \\
        --intervals speaker_duration.json [--interval-format seconds|timecode30] \\
        [--audio-dir DIR] [--references DIR] [--backend NAME] [--weights PATH] \\
        [--set METRIC.KEY=VALUE ...] --output results.json

Audio lookup in ``--audio-dir`` (searched recursively) for a video ``NAME.mp4``: per-person
tracks ``NAME_left.*`` / ``NAME_right.*`` (or ``NAME_0.*``, ``NAME_1.*`` ...; the benchmark's
``audio_left/interact_11_left.flac`` layout works as is), and a mixed track ``NAME.*``.
References (FID / FVD real set) in ``--references``: the file with the same stem.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from pathlib import Path

from anytalker.cli_common import JSON_STDOUT, progress_enabled, write_json_report
from kernel.errors import UserError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg"}
REF_EXTS = VIDEO_EXTS | {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
_POSITIONS = ["left", "middle", "center", "right"]


def register(subparsers) -> None:
    from anytalker import cli_common as c
    from metrics.intervals import INTERVAL_FORMATS
    from metrics.registry import metric_names

    p = c.group(subparsers, "metrics", "score generated videos (Sync-C/D, Sync-C*, identity, Interactivity, FID/FVD)", [
        "anytalker metrics ls",
        "anytalker metrics run --metric identity --videos my_outputs/ --references refs/ --output results.json",
    ])
    sub = p.add_subparsers(dest="metrics_command", metavar="SUBCOMMAND")

    ls = c.leaf(sub, "ls", "list the metrics, their versions and backends", [
        "anytalker metrics ls",
        "anytalker metrics ls --json metrics.json",
    ])
    c.add_json(ls, "the metric list")
    ls.set_defaults(func=cmd_ls)

    run = c.leaf(sub, "run", "score every video of a directory", [
        "anytalker metrics run --metric interactivity --metric sync_c_star --videos my_outputs/ \\\n"
        "    --intervals ../shared/data/anytalker_benchmark/speaker_duration.json \\\n"
        "    --audio-dir ../shared/data/anytalker_benchmark --output results.json",
        "anytalker metrics run --metric sync_c --backend syncnet --weights syncnet_v2.model --videos out/ "
        "--output r.json",
    ], description=__doc__)
    c.add_metric(run, f"metric to compute; repeat for several: {', '.join(metric_names())}",
                 choices=metric_names(), required=True, old_comma="--metrics")
    run.add_argument("--videos", required=True, type=Path, help="directory of generated videos")
    run.add_argument("--intervals", type=Path, help="speaker_duration.json (speaking intervals per person)")
    run.add_argument("--interval-format", default="seconds", choices=INTERVAL_FORMATS,
                     help="how to read the interval values (default: seconds, as the released scorer)")
    run.add_argument("--audio-dir", type=Path, help="per-speaker / mixed audio tracks (see the description above)")
    run.add_argument("--references", type=Path, help="real videos / images with the same stems (FID, FVD, identity)")
    run.add_argument("--backend", help="backend for the metrics that have one (see `anytalker metrics ls`)")
    run.add_argument("--weights", type=Path, help="model file for the chosen backend / network (syncnet_v2.model, ArcFace, Inception, I3D)")
    run.add_argument("--set", action="append", default=[], metavar="METRIC.KEY=VALUE",
                     help="override one metric parameter (repeatable), e.g. interactivity.target_size=256")
    c.add_output(run, "results JSON to write", required=True, old=("--out",), type=Path, metavar="FILE")
    run.add_argument("--no-items", action="store_true", help="omit per-video items from the results JSON")
    run.set_defaults(func=cmd_run)


def cmd_ls(args) -> int:
    from metrics.registry import list_metrics

    rows = list_metrics()
    if args.json:
        write_json_report(args.json, rows)
        if args.json == JSON_STDOUT:
            return 0
    header = ("name", "version", "better", "backends", "description")
    table = [(r["name"], r["version"], "higher" if r["higher_is_better"] else "lower",
              ",".join(r["backends"]), r["description"]) for r in rows]
    widths = [max(len(str(x[i])) for x in [header, *table]) for i in range(4)]
    for row in [header, *table]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row[:4], widths)) + "  " + row[4])
    return 0


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(items: list[str], names: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for it in items:
        m = re.fullmatch(r"([a-z_]+)\.([a-zA-Z_]+)=(.*)", it)
        if not m:
            raise UserError(f"--set {it}: expected METRIC.KEY=VALUE, e.g. interactivity.target_size=256")
        metric, key, value = m.groups()
        if metric not in names:
            raise UserError(f"--set {it}: metric {metric!r} is not among the --metric list {names}")
        out.setdefault(metric, {})[key] = _parse_value(value)
    return out


def _index_files(root: Path | None, exts: set[str]) -> dict[str, Path]:
    if root is None:
        return {}
    if not root.is_dir():
        raise UserError(f"{root}: not a directory; pass an existing directory")
    idx: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in exts:
            idx.setdefault(p.stem, p)
    return idx


def _person_audio(stem: str, audio: dict[str, Path]) -> list[str] | None:
    named = [(i, audio[f"{stem}_{pos}"]) for i, pos in enumerate(_POSITIONS) if f"{stem}_{pos}" in audio]
    if named:
        return [str(p) for _, p in named]
    numbered = []
    k = 0
    while f"{stem}_{k}" in audio:
        numbered.append(str(audio[f"{stem}_{k}"]))
        k += 1
    return numbered or None


def scan_videos(videos_dir: Path) -> tuple[list[Path], dict[str, int]]:
    """(items, {reason: count} of the other entries). Every entry with a video name is an item,
    so a broken link, a folder named x.mp4 or a FIFO fails with its reason and counts in
    n_failed; every other entry is a counted skip."""
    videos, skipped = [], {}
    for p in sorted(videos_dir.iterdir()):
        if p.suffix.lower() in VIDEO_EXTS:
            videos.append(p)
        else:
            why = "folder_not_scanned" if p.is_dir() else "not_a_video_name"
            skipped[why] = skipped.get(why, 0) + 1
    return videos, skipped


def build_samples(videos_dir: Path, intervals: Path | None, fmt: str, audio_dir: Path | None,
                  references: Path | None):
    from metrics.base import Sample
    from metrics.intervals import load_speaker_durations, lookup_intervals

    if not videos_dir.is_dir():
        raise UserError(f"{videos_dir}: not a directory; --videos takes a directory of generated videos")
    videos, _ = scan_videos(videos_dir)
    if not videos:
        raise UserError(f"{videos_dir}: no video files ({', '.join(sorted(VIDEO_EXTS))}); "
                        "point --videos at the generated videos")
    table = load_speaker_durations(intervals, fmt) if intervals else {}
    if table:
        missing = [v.name for v in videos if lookup_intervals(table, v) is None]
        if missing:
            raise UserError(f"{intervals}: no speaking intervals for {len(missing)} video(s) of {videos_dir} "
                            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); add their entries "
                            "or move those videos out of --videos")
    audio = _index_files(audio_dir, AUDIO_EXTS)
    refs = _index_files(references, REF_EXTS)
    samples = []
    for v in videos:
        ref = refs.get(v.stem)
        samples.append(Sample(
            item_id=v.name, video_path=str(v),
            audio_paths=_person_audio(v.stem, audio),
            mixed_audio_path=str(audio[v.stem]) if v.stem in audio else None,
            speaking_intervals=lookup_intervals(table, v) if table else None,
            interval_format=fmt,
            reference_path=str(ref) if ref else None,
        ))
    return samples


def cmd_run(args) -> int:
    from kernel import __version__
    from metrics.registry import get_metric

    names = list(dict.fromkeys(args.metric))
    if args.weights is not None and not args.weights.is_file():
        raise UserError(f"{args.weights}: weights file not found; pass an existing model file to --weights")
    if args.intervals is not None and not args.intervals.is_file():
        raise UserError(f"{args.intervals}: intervals file not found; pass the benchmark's speaker_duration.json")
    overrides = _overrides(args.set, names)
    from metrics.registry import metric_class

    need_intervals = [n for n in names if "speaking_intervals" in metric_class(n).requires]
    if need_intervals and args.intervals is None:
        raise UserError(f"--metric {', '.join(need_intervals)} needs speaking intervals: pass --intervals "
                        "speaker_duration.json (e.g. ../shared/data/anytalker_benchmark/speaker_duration.json)")
    samples = build_samples(args.videos, args.intervals, args.interval_format, args.audio_dir, args.references)

    options = _backend_options(names, args.backend, args.weights)
    results = []
    for name in names:
        opts = dict(options.get(name, {}))
        opts.update(overrides.get(name, {}))
        try:
            metric = get_metric(name, **opts)
        except ValueError as e:
            raise UserError(f"--set for {name}: {e}") from None
        res = metric.evaluate(samples, progress=progress_enabled(args))
        results.append(res)
        ci = (f"[{_fmt(res.ci_low)}, {_fmt(res.ci_high)}] {res.ci_method}" if res.ci_method
              else "(no CI: fewer than 2 scored)")
        print(f"{name}: {_fmt(res.value)} {ci} "
              f"({res.backend} {res.backend_version}; {res.n_scored} scored, {res.n_failed} failed"
              f"{' ' + json.dumps(res.failures) if res.failures else ''})", flush=True)

    doc = {
        "anytalker_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "videos": str(args.videos),
        "intervals": str(args.intervals) if args.intervals else None,
        "interval_format": args.interval_format,
        "audio_dir": str(args.audio_dir) if args.audio_dir else None,
        "references": str(args.references) if args.references else None,
        "skipped": scan_videos(args.videos)[1],
        "results": [r.to_dict(with_items=not args.no_items) for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, allow_nan=False))
    print(f"wrote {args.output}")
    skipped = doc["skipped"]
    if skipped:
        print(f"skipped (not scored, not items): {sum(skipped.values())} " + json.dumps(skipped))
    return _exit_if_nothing_scored(results)


def _exit_if_nothing_scored(results) -> int:
    """1 when a requested metric scored no item, with the reasons on stderr; else 0."""
    empty = [r for r in results if r.n_scored == 0]
    for r in empty:
        details = [it.components.get("detail") for it in r.items if not it.ok and it.components.get("detail")]
        print(f"anytalker: error: {r.name} scored nothing ({r.n_failed} failed: {json.dumps(r.failures)})"
              + (f"; first: {str(details[0]).splitlines()[0][:200]}" if details else ""), file=sys.stderr)
    return 1 if empty else 0


def _backend_options(names: list[str], backend: str | None, weights: Path | None) -> dict[str, dict]:
    """--backend goes to the chosen metrics that offer it; --weights to the metrics that load
    that one network (a SyncNet file for the sync metrics with --backend syncnet, an ArcFace file
    for identity with --backend arcface, the Inception / I3D file for fid / fvd)."""
    from metrics.registry import metric_class

    opts: dict[str, dict] = {n: {} for n in names}
    if backend:
        takers = [n for n in names if backend in metric_class(n).backends and "backend" in metric_class(n).params]
        if not takers:
            raise UserError(f"--backend {backend}: none of {names} has this backend; see `anytalker metrics ls`")
        for n in takers:
            opts[n]["backend"] = backend
    if weights:
        groups: dict[str, list[str]] = {}
        for n in names:
            cls = metric_class(n)
            if "weights" not in cls.params:
                continue
            if "backend" in cls.params:  # weights only mean something for the network backend
                if backend and backend in cls.backends and backend != cls.params["backend"]:
                    groups.setdefault(backend, []).append(n)
            else:
                groups.setdefault(n, []).append(n)
        if not groups:
            raise UserError(f"{weights}: no chosen metric loads a network file with these options; pass "
                            "--backend syncnet (sync metrics) or --backend arcface (identity), or --metric fid/fvd")
        if len(groups) > 1:
            raise UserError(f"{weights}: ambiguous: {sorted(groups)} need different network files; pass each "
                            "with --set METRIC.weights=PATH instead of --weights")
        for n in next(iter(groups.values())):
            opts[n]["weights"] = str(weights)
    return opts


def _fmt(x) -> str:
    return "nan" if x is None or x != x else f"{x:.4f}"
