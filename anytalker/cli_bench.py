"""`anytalker bench`: validate and score benchmark submissions, build the leaderboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from anytalker.cli_common import progress_enabled, write_json_report


def register(subparsers) -> None:
    from anytalker import cli_common as c

    p = c.group(subparsers, "bench", "benchmark submissions: validate, score, leaderboard", [
        "anytalker bench validate submission.zip",
        "anytalker bench score submission/ --output results.json",
        "anytalker bench leaderboard results/*.json --output leaderboard.json --html leaderboard.html",
    ])
    sub = p.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    def add_manifest_args(sp):
        sp.add_argument("--benchmark", default="interactive_eyes", help="packaged benchmark (default: %(default)s)")
        sp.add_argument("--bench-version", dest="bench_version", default="v1",
                        help="benchmark version (default: %(default)s)")
        c.old_spelling(sp, "--version", "bench_version", "--bench-version")
        sp.add_argument("--manifest", type=Path, help="use this manifest.json instead of a packaged benchmark "
                                                      "(e.g. a single-person HDTF-style manifest)")
        sp.add_argument("--items", help="comma-separated item ids to check/score (default: all)")

    v = c.leaf(sub, "validate", "check a submission folder or zip against the benchmark protocol", [
        "anytalker bench validate submission.zip",
        "anytalker bench validate submission/ --items interact_11 --json report.json",
    ])
    v.add_argument("submission", type=Path, help="folder or .zip holding submission.json + one video per item")
    add_manifest_args(v)
    c.add_json(v, "the validation report", old_switch=False)
    v.set_defaults(func=cmd_validate)

    s = c.leaf(sub, "score", "validate, then run the benchmark's pinned metrics", [
        "anytalker bench score submission/ --output results.json",
        "anytalker bench score submission.zip --items interact_11 --metric interactivity --output r.json",
        "anytalker bench score my_videos/ --manifest my_hdtf/manifest.json --output results.json",
    ])
    s.add_argument("submission", type=Path, help="folder or .zip holding submission.json + one video per item")
    add_manifest_args(s)
    c.add_output(s, "results JSON to write", required=True, old=("--out",), type=Path, metavar="FILE")
    s.add_argument("--scoring", type=Path, help="scoring.yaml (default: next to the manifest)")
    c.add_data(s, "data root holding anytalker_benchmark/ (default: $ANYTALKER_DATA, then ../shared/data)")
    s.add_argument("--audio-dir", dest="audio_dir", type=Path,
                   help="folder with the benchmark audio (audio_left/, audio_right/); default DATA/anytalker_benchmark")
    c.old_spelling(s, "--audio-root", "audio_dir", "--audio-dir", type=Path)
    s.add_argument("--references", dest="references", type=Path,
                   help="folder with <item_id>.png reference frames (identity)")
    c.old_spelling(s, "--reference-root", "references", "--references", type=Path)
    c.add_metric(s, "score only this metric of the scoring file; repeat for several (default: all)",
                 old_comma="--metrics")
    s.add_argument("--interval-format", choices=["seconds", "timecode30"],
                   help="how to read the manifest's speaking intervals (default: the scoring file's, "
                        "'seconds' for InteractiveEyes); recorded in the results")
    s.add_argument("--no-items", dest="no_items", action="store_true", help="omit per-item records from the results")
    c.old_spelling(s, "--no-per-sample", "no_items", "--no-items", switch=True, const=True)
    s.add_argument("--allow-unpinned", action="store_true",
                   help="score even when an installed metric version/backend differs from the pinned one")
    # progress is on by default now (-q turns it off); the old opt-in switch does nothing
    c.old_spelling(s, "--progress", "_progress", "(progress is on by default; -q turns it off)", switch=True,
                   const=True)
    s.set_defaults(func=cmd_score)

    lb = c.leaf(sub, "leaderboard", "rank results files into JSON + a sortable HTML page", [
        "anytalker bench leaderboard results/*.json --output leaderboard.json --html leaderboard.html",
        "anytalker bench leaderboard a.json b.json --output lb.json --group",
    ])
    lb.add_argument("results", nargs="+", type=Path, help="results.json files from `anytalker bench score`")
    c.add_output(lb, "leaderboard JSON to write", required=True, old=("--out",), type=Path, metavar="FILE")
    lb.add_argument("--html", type=Path, help="also write a self-contained HTML page here")
    lb.add_argument("--title", default="AnyTalker leaderboard", help="page title (default: %(default)s)")
    lb.add_argument("--group", action="store_true",
                    help="rank each comparable set separately instead of refusing a mix")
    lb.set_defaults(func=cmd_leaderboard)


def _manifest(args):
    from benchmarks.manifest import load_benchmark, load_manifest

    if args.manifest:
        return load_manifest(args.manifest)
    return load_benchmark(args.benchmark, args.bench_version)


def _items(args):
    from benchmarks.manifest import parse_items_option

    return parse_items_option(args.items)


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def cmd_validate(args) -> int:
    from benchmarks.submission import validate_submission

    manifest = _manifest(args)
    report, _ = validate_submission(args.submission, manifest, _items(args))
    print(report.render())
    if args.json:
        write_json_report(args.json, report.to_dict())
    return 0 if report.ok else 1


def cmd_score(args) -> int:
    from benchmarks.scoring import default_scoring_path, load_scoring, score_submission

    manifest = _manifest(args)
    scoring = load_scoring(args.scoring or default_scoring_path(manifest))
    if args.interval_format:
        scoring.interval_format = args.interval_format
    metric_names = list(dict.fromkeys(args.metric)) if args.metric else None
    audio_dir = args.audio_dir or (Path(args.data) / "anytalker_benchmark" if args.data else None)
    doc = score_submission(args.submission, manifest, scoring, _items(args), audio_dir,
                           args.references, metric_names, per_sample=not args.no_items,
                           allow_unpinned=args.allow_unpinned, progress=progress_enabled(args))
    _write_json(args.output, doc)
    print(f"{args.output}: {doc['benchmark']} {doc['version']}, {len(doc['items'])} item(s), "
          f"model {doc['submission']['model']!r}")
    for name, m in doc["metrics"].items():
        value = "n/a" if m["value"] is None else f"{m['value']:.4f}"
        ci = "" if m["ci_low"] is None else f" [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
        print(f"  {name:<14} {value}{ci}  scored {m['n_scored']}, failed {m['n_failed']} "
              f"{m['failures'] or ''} ({m['backend']} {m['backend_version']}, v{m['version']})")
    for name, why in doc["not_run"].items():
        print(f"  {name:<14} not run: {why}")
    if not doc["pinning"]["ok"]:
        print("warning: unpinned metrics: " + "; ".join(doc["pinning"]["differences"]), file=sys.stderr)
    # scoring nothing is not success: a metric that ran on no item, or one asked for by name
    # that could not run, makes the exit status 1 (the results file is still written)
    empty = {n: m for n, m in doc["metrics"].items() if not m["n_scored"]}
    for name, m in empty.items():
        details = [it.get("components", {}).get("detail") for it in m.get("items") or [] if not it.get("ok")]
        details = [d for d in details if d]
        print(f"anytalker: error: {name} scored nothing ({m['n_failed']} failed: {json.dumps(m['failures'])})"
              + (f"; first: {str(details[0]).splitlines()[0][:200]}" if details else ""), file=sys.stderr)
    asked_not_run = [n for n in (metric_names or []) if n in doc["not_run"]]
    for name in asked_not_run:
        print(f"anytalker: error: {name} was asked for but not run: {doc['not_run'][name]}", file=sys.stderr)
    return 1 if empty or asked_not_run else 0


def cmd_leaderboard(args) -> int:
    from benchmarks.leaderboard import build_leaderboard, load_results, render_html

    results = load_results(args.results)
    board = build_leaderboard(results, on_mismatch="group" if args.group else "refuse")
    _write_json(args.output, board)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(board, args.title), encoding="utf-8")
    for g in board["groups"]:
        print(f"{g['benchmark']} {g['version']} ({g['n_items']} item(s)):")
        for row in g["rows"]:
            primary = (g.get("ranking") or {}).get("primary")
            v = (row["metrics"].get(primary) or {}).get("value") if primary else None
            print(f"  {row['rank']:>3}. {row['model']} ({row['revision']})  {primary}="
                  f"{'n/a' if v is None else f'{v:.4f}'}")
    print(f"wrote {args.output}" + (f" and {args.html}" if args.html else ""))
    if len(board["groups"]) > 1:
        print(f"note: {len(board['groups'])} separate rankings (results not comparable across them)")
    return 0
