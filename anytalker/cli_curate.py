"""`anytalker curate run|status|rejects|describe`."""

from __future__ import annotations

import json

from anytalker.errors import UserError


def _overrides(pairs: list[str]) -> dict:
    """--set stage.param=value (value parsed as YAML)."""
    import yaml

    out: dict = {}
    for p in pairs or []:
        key, sep, val = p.partition("=")
        stage, dot, param = key.partition(".")
        if not sep or not dot:
            raise UserError(f"--set {p!r}: expected STAGE.PARAM=VALUE, e.g. --set probe.min_duration_s=2")
        out.setdefault(stage, {})[param] = yaml.safe_load(val)
    return out


def cmd_run(args) -> int:
    from curation.base import StageConfigError
    from pipelines.runner import run_curation

    try:
        summary = run_curation(
            args.config, args.input, args.output, executor=args.executor, limit=args.limit,
            retry_failed=args.retry_failed, overwrite=args.overwrite, data_root=args.data_root,
            workers=args.workers, ray_address=args.ray_address, overrides=_overrides(args.set),
            progress=not args.quiet,
        )
    except StageConfigError as e:
        raise UserError(f"{args.config}: {e}") from e
    print(summary.describe())
    return 0


def cmd_status(args) -> int:
    from pipelines.runner import run_status

    st = run_status(args.run)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    state = "complete" if st["complete"] else "incomplete (re-run the same command to resume)"
    print(f"{st['run_dir']}: {st['config']}, {st['sources']} sources, "
          f"{st['partitions_complete']}/{st['partitions']} partitions, {state}")
    t = st["totals"]
    print(f"ok {t['ok']}  filtered {t['filtered']}  failed {t['failed']}")
    for r, n in st["reasons"].items():
        print(f"  {r}: {n}")
    if st.get("skipped"):
        print(f"skipped (inputs found, not curated): {sum(st['skipped'].values())} " +
              ", ".join(f"{r} {n}" for r, n in st["skipped"].items()))
    return 0


def cmd_rejects(args) -> int:
    from pipelines import shards

    try:
        rows = shards.read_rows(args.run, kind="rejects")
    except shards.ManifestError as e:
        raise UserError(str(e)) from e
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r.get("reason") or "?", []).append(r)
    if args.json:
        print(json.dumps({k: {"count": len(v), "examples": [
            {"source_path": x["source_path"], "status": x["status"], "start_s": x.get("start_s"),
             "end_s": x.get("end_s"), "failed_stage": x.get("failed_stage"),
             "detail": (x.get("error_detail") or "")[:200]} for x in v[: args.examples]]}
            for k, v in sorted(by.items(), key=lambda kv: -len(kv[1]))}, indent=2))
        return 0
    print(f"{len(rows)} rejected rows in {args.run}")
    for reason, rs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        print(f"{reason}: {len(rs)}")
        for x in rs[: args.examples]:
            span = "" if x.get("start_s") is None else f" [{x['start_s']:.2f}-{x['end_s']:.2f}s]"
            detail = (x.get("error_detail") or "").splitlines()[0][:120] if x.get("error_detail") else ""
            print(f"    {x['source_path']}{span} ({x.get('failed_stage')}) {detail}")
    return 0


def cmd_describe(args) -> int:
    from curation.base import StageConfigError
    from pipelines.pipeline import describe, load_config

    try:
        print(describe(load_config(args.config)))
    except StageConfigError as e:
        raise UserError(str(e)) from e
    return 0


def cmd_cleanup(args) -> int:
    from pipelines.rayutil import end_orphans, find_orphans

    if args.dry_run:
        pids = find_orphans()
        print(f"{len(pids)} leftover Ray process(es) of ended anytalker runs: {pids}")
        return 0
    pids = end_orphans()
    print(f"ended {len(pids)} leftover Ray process(es) of ended anytalker runs" + (f": {pids}" if pids else ""))
    return 0


def cmd_report(args) -> int:
    from pipelines.report import write_report

    out = write_report(args.run, args.html)
    print(f"report: {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("curate", help="run curation pipelines into Parquet shards")
    s = p.add_subparsers(dest="curate_command", metavar="SUBCOMMAND")

    r = s.add_parser("run", help="run a pipeline config over a folder or list of videos")
    r.add_argument("config", help="pipeline YAML (path, or built-in name: single_person, multi_person)")
    r.add_argument("--input", required=True, help="folder of videos, or a text file with one path per line")
    r.add_argument("--output", required=True, help="run folder (created; an existing run is resumed)")
    r.add_argument("--executor", choices=["local", "ray"], default="local")
    r.add_argument("--limit", type=int, default=None, help="only the first N inputs (sorted)")
    r.add_argument("--retry-failed", action="store_true", help="re-run sources with status=failed rows only")
    r.add_argument("--overwrite", action="store_true", help="delete the run's shards and start over")
    r.add_argument("--data-root", default=None, help="root that source paths are stored relative to")
    r.add_argument("--workers", type=int, default=None, help="Ray: CPUs of the local runtime / actor pool size")
    r.add_argument("--ray-address", default=None, help="Ray: connect to an existing cluster (e.g. auto)")
    r.add_argument("--set", action="append", metavar="STAGE.PARAM=VALUE", help="override a stage parameter")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    st = s.add_parser("status", help="progress and totals of a run folder")
    st.add_argument("run")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    rj = s.add_parser("rejects", help="reject reason histogram with example rows")
    rj.add_argument("run")
    rj.add_argument("--examples", type=int, default=3)
    rj.add_argument("--json", action="store_true")
    rj.set_defaults(func=cmd_rejects)

    d = s.add_parser("describe", help="print a pipeline's stages, resources and column contracts")
    d.add_argument("config")
    d.set_defaults(func=cmd_describe)

    rp = s.add_parser("report", help="self-contained HTML report of a run")
    rp.add_argument("run")
    rp.add_argument("--html", required=True, help="output .html file")
    rp.set_defaults(func=cmd_report)

    cl = s.add_parser("cleanup", help="end Ray processes left by runs whose driver was killed (kill -9)")
    cl.add_argument("--dry-run", action="store_true", help="only list them")
    cl.set_defaults(func=cmd_cleanup)

    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
