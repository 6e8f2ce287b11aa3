"""`anytalker bench`: validate and score benchmark submissions, build the leaderboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path



def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmark submissions: validate, score, leaderboard",
                              description=__doc__)
    sub = p.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    def add_manifest_args(sp):
        sp.add_argument("--benchmark", default="interactive_eyes", help="packaged benchmark (default: %(default)s)")
        sp.add_argument("--version", dest="bench_version", default="v1", help="benchmark version (default: %(default)s)")
        sp.add_argument("--manifest", type=Path, help="use this manifest.json instead of a packaged benchmark "
                                                      "(e.g. a single-person HDTF-style manifest)")
        sp.add_argument("--items", help="comma-separated item ids to check/score (default: all)")

    v = sub.add_parser("validate", help="check a submission folder or zip against the benchmark protocol")
    v.add_argument("submission", type=Path, help="folder or .zip holding submission.json + one video per item")
    add_manifest_args(v)
    v.add_argument("--json", type=Path, help="also write the report as JSON here")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("score", help="validate, then run the benchmark's pinned metrics")
    s.add_argument("submission", type=Path)
    add_manifest_args(s)
    s.add_argument("--out", type=Path, required=True, help="results JSON to write")
    s.add_argument("--scoring", type=Path, help="scoring.yaml (default: next to the manifest)")
    s.add_argument("--audio-root", type=Path, help="folder with the benchmark audio (audio_left/, audio_right/); "
                                                    "default $ANYTALKER_DATA/anytalker_benchmark, then "
                                                    "../shared/data/anytalker_benchmark")
    s.add_argument("--reference-root", type=Path, help="folder with <item_id>.png reference frames (identity)")
    s.add_argument("--metrics", help="comma-separated subset of the scoring metrics (default: all)")
    s.add_argument("--interval-format", choices=["seconds", "timecode30"],
                   help="how to read the manifest's speaking intervals (default: the scoring file's, "
                        "'seconds' for InteractiveEyes); recorded in the results")
    s.add_argument("--no-per-sample", action="store_true", help="omit per-item records from the results")
    s.add_argument("--allow-unpinned", action="store_true",
                   help="score even when an installed metric version/backend differs from the pinned one")
    s.add_argument("--progress", action="store_true", help="print one line per scored item")
    s.set_defaults(func=cmd_score)

    lb = sub.add_parser("leaderboard", help="rank results files into JSON + a sortable HTML page")
    lb.add_argument("results", nargs="+", type=Path, help="results.json files from `anytalker bench score`")
    lb.add_argument("--out", type=Path, required=True, help="leaderboard JSON to write")
    lb.add_argument("--html", type=Path, help="self-contained HTML page to write")
    lb.add_argument("--title", default="AnyTalker leaderboard")
    lb.add_argument("--group", action="store_true",
                    help="rank each comparable set separately instead of refusing a mix")
    lb.set_defaults(func=cmd_leaderboard)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


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
        _write_json(args.json, report.to_dict())
    return 0 if report.ok else 1


def cmd_score(args) -> int:
    from benchmarks.scoring import default_scoring_path, load_scoring, score_submission

    manifest = _manifest(args)
    scoring = load_scoring(args.scoring or default_scoring_path(manifest))
    if args.interval_format:
        scoring.interval_format = args.interval_format
    metric_names = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    doc = score_submission(args.submission, manifest, scoring, _items(args), args.audio_root,
                           args.reference_root, metric_names, per_sample=not args.no_per_sample,
                           allow_unpinned=args.allow_unpinned, progress=args.progress)
    _write_json(args.out, doc)
    print(f"{args.out}: {doc['benchmark']} {doc['version']}, {len(doc['items'])} item(s), "
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
    _write_json(args.out, board)
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
    print(f"wrote {args.out}" + (f" and {args.html}" if args.html else ""))
    if len(board["groups"]) > 1:
        print(f"note: {len(board['groups'])} separate rankings (results not comparable across them)")
    return 0
