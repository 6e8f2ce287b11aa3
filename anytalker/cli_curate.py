"""`anytalker curate run|status|rejects|describe`."""

from __future__ import annotations

from anytalker.cli_common import JSON_STDOUT, progress_enabled, write_json_report
from kernel.errors import UserError


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
            retry_failed=args.retry_failed, overwrite=args.overwrite, data_root=args.data,
            workers=args.workers, cpus_per_worker=args.cpus_per_worker, ray_address=args.ray_address, overrides=_overrides(args.set),
            progress=progress_enabled(args),
        )
    except StageConfigError as e:
        raise UserError(f"{args.config}: {e}") from e
    print(summary.describe())
    return 0


def cmd_status(args) -> int:
    from pipelines.runner import run_status

    st = run_status(args.run)
    if args.json:
        write_json_report(args.json, st)
        if args.json == JSON_STDOUT:
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
        write_json_report(args.json, {k: {"count": len(v), "examples": [
            {"source_path": x["source_path"], "status": x["status"], "start_s": x.get("start_s"),
             "end_s": x.get("end_s"), "failed_stage": x.get("failed_stage"),
             "detail": (x.get("error_detail") or "")[:200]} for x in v[: args.samples]]}
            for k, v in sorted(by.items(), key=lambda kv: -len(kv[1]))})
        if args.json == JSON_STDOUT:
            return 0
    print(f"{len(rows)} rejected rows in {args.run}")
    for reason, rs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        print(f"{reason}: {len(rs)}")
        for x in rs[: args.samples]:
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
    from pipelines.staging import sweep_stale

    if args.dry_run:
        pids = find_orphans()
        print(f"{len(pids)} leftover Ray process(es) of ended anytalker runs: {pids}")
        return 0
    pids = end_orphans()
    print(f"ended {len(pids)} leftover Ray process(es) of ended anytalker runs" + (f": {pids}" if pids else ""))
    swept = sweep_stale()
    print(f"removed {len(swept)} staging folder(s) of killed runs")
    return 0


def cmd_report(args) -> int:
    from pipelines.report import write_report

    out = write_report(args.run, args.output)
    print(f"report: {out}")
    return 0


def register(sub) -> None:
    from anytalker import cli_common as c

    p = c.group(sub, "curate", "run curation pipelines into Parquet shards", [
        "anytalker curate run single_person --input VIDEOS/ --output runs/r1",
        "anytalker curate status runs/r1",
    ])
    s = p.add_subparsers(dest="curate_command", metavar="SUBCOMMAND")

    r = c.leaf(s, "run", "run a pipeline config over a folder or list of videos", [
        "anytalker curate run single_person --input VIDEOS/ --output runs/r1",
        "anytalker curate run multi_person --input list.txt --output runs/r2 --executor ray --workers 2",
        "anytalker curate run single_person --input VIDEOS/ --output runs/r1 --set probe.min_duration_s=2",
    ])
    r.add_argument("config", help="pipeline YAML (path, or built-in name: single_person, multi_person, video_only)")
    r.add_argument("--input", required=True,
                   help="folder of videos (scanned recursively), a text file with one path per line, or a URI")
    c.add_output(r, "run folder (created; an existing run is resumed)", required=True, metavar="DIR")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine (--workers 1: this process); ray: Ray Data (actor pools for model stages) (default: %(default)s)")
    r.add_argument("--limit", type=int, default=None, help="only the first N inputs (sorted)")
    r.add_argument("--retry-failed", action="store_true", help="re-run sources with status=failed rows only")
    r.add_argument("--overwrite", action="store_true", help="delete the run's shards and start over")
    c.add_data(r, "data root: source paths are stored relative to it (default: the common folder of the inputs)",
               old=("--data-root",))
    r.add_argument("--cpus-per-worker", type=int, default=None, metavar="N",
                   help="compute threads (Ray: CPUs) of each worker, decoder included; default an equal share of the CPUs")
    r.add_argument("--workers", type=int, default=None,
                   help="worker processes (local: default one per CPU, at most one per input; 1 = in this process, "
                        "one input after another) or Ray actors (default one per CPU of the cluster); each gets an "
                        "equal share of the CPUs")
    r.add_argument("--ray-address", default=None, help="Ray: connect to an existing cluster (e.g. auto)")
    r.add_argument("--set", action="append", metavar="STAGE.PARAM=VALUE",
                   help="override a stage parameter (repeatable), e.g. probe.min_duration_s=2")
    r.set_defaults(func=cmd_run)

    st = c.leaf(s, "status", "progress and totals of a run folder (works mid-run)", [
        "anytalker curate status runs/r1",
        "anytalker curate status runs/r1 --json status.json",
    ])
    st.add_argument("run", help="run folder (the --output of `curate run`)")
    c.add_json(st, "the status")
    st.set_defaults(func=cmd_status)

    rj = c.leaf(s, "rejects", "reject reason histogram with example rows", [
        "anytalker curate rejects runs/r1",
        "anytalker curate rejects runs/r1 --samples 10 --json -",
    ])
    rj.add_argument("run", help="run folder (the --output of `curate run`)")
    rj.add_argument("--samples", dest="samples", type=int, default=3,
                    help="example rows per reason (default: %(default)s)")
    c.old_spelling(rj, "--examples", "samples", "--samples", type=int)
    c.add_json(rj, "the histogram with the example rows")
    rj.set_defaults(func=cmd_rejects)

    d = c.leaf(s, "describe", "print a pipeline's stages, resources and column contracts", [
        "anytalker curate describe single_person",
        "anytalker curate describe my_pipeline.yaml",
    ])
    d.add_argument("config", help="pipeline YAML (path, or built-in name: single_person, multi_person, video_only)")
    d.set_defaults(func=cmd_describe)

    rp = c.leaf(s, "report", "self-contained HTML report of a run", [
        "anytalker curate report runs/r1 --output report.html",
    ])
    rp.add_argument("run", help="run folder (the --output of `curate run`)")
    c.add_output(rp, "HTML page to write", required=True, old=("--html",), metavar="FILE")
    rp.set_defaults(func=cmd_report)

    cl = c.leaf(s, "cleanup", "end Ray processes and remove staging folders left by runs whose driver was killed (kill -9)", [
        "anytalker curate cleanup --dry-run",
        "anytalker curate cleanup",
    ])
    cl.add_argument("--dry-run", action="store_true", help="only list them")
    cl.set_defaults(func=cmd_cleanup)
