"""CPU per stage of this tree against a baseline commit, interleaved in one run, rows compared.

    nice -n 10 .venv/bin/python benchmarks/perf/stage_cpu_ab.py --baseline REV [--data DIR]
        [--rounds 3] [--config single_person]

Exports ``REV`` (``git archive``) to a temporary folder and runs the pipeline over the 3 shared
talking clips and ``interact_11`` (two people, two voices), in one in-process local worker,
alternately from the baseline and from this tree (baseline, this, baseline, this, ...), each
run a fresh process. Each run reports the CPU seconds of every stage's batches (the process's
threads + its reaped children, i.e. the ffmpeg decoders; model set-up excluded), as
``curation_throughput.py`` does. Prints every run, then the per-stage mean and the change,
in CPU ms per source frame; and whether the rows of every run equal the first baseline
run's (timings, paths and run ids excluded). Interleaving makes the machine's load drift fall
on both sides alike. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.perf.result_child import run_result_child  # noqa: E402
from kernel.data import DEMO_SINGLE_PERSON as SINGLE  # noqa: E402
from kernel.data import resolve_data_root  # noqa: E402

CLIPS = [*SINGLE, "anytalker_benchmark/interact_11.mp4"]

_CHILD = textwrap.dedent("""
    import json, resource, sys, tempfile, time
    from pathlib import Path
    import curation.base as base

    stage_cpu, _run = {}, base.run_stage_batch

    def cpu():
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def timed(stage, rows):
        stage.ensure_setup()
        c = cpu()
        out = _run(stage, rows)
        stage_cpu[stage.name] = stage_cpu.get(stage.name, 0.0) + cpu() - c
        return out

    base.run_stage_batch = timed  # before pipelines binds the name
    from pipelines.runner import run_curation
    from pipelines.shards import read_rows
    config, listing, out, root = sys.argv[1:5]
    run_curation(config, Path(listing), Path(out), executor="local", workers=1, data_root=Path(root), progress=False)
    rows = read_rows(out) + read_rows(out, kind="rejects")

    def comparable(r):
        return {k: v for k, v in r.items() if "second" not in k and "time" not in k and "path" not in k
                and k != "run_id"}

    rows = sorted((comparable(r) for r in rows), key=lambda r: json.dumps(r, sort_keys=True, default=str))
    print("RESULT " + json.dumps({"stage_cpu": stage_cpu, "rows": rows}, default=str))
""")


def run_once(tree: Path, config: str, listing: Path, root: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="stage-ab-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        return run_result_child(_CHILD, [config, str(listing), str(out / "run"), str(root)], env,
                                f"run from {tree}", cwd=str(tree))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def source_frames(paths: list[Path]) -> int:
    from curation.decode import timeline

    return sum(timeline(p)[1] for p in paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against (e.g. main, a commit)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--config", default="single_person")
    args = ap.parse_args()
    root = resolve_data_root(args.data, need=CLIPS).absolute()
    work = Path(tempfile.mkdtemp(prefix="stage-ab-trees-"))
    try:
        base_tree = work / "baseline"
        base_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline], capture_output=True,
                                 stdin=subprocess.DEVNULL)
        if archive.returncode != 0:
            raise SystemExit(f"--baseline {args.baseline}: git archive failed: {archive.stderr.decode()[:300]}")
        subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive.stdout, check=True)
        paths = [root / c for c in CLIPS]
        listing = work / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        frames = source_frames(paths)
        sides = {"baseline": base_tree, "this tree": REPO}
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        ref_rows = None
        for i in range(max(1, args.rounds)):
            for side, tree in sides.items():
                r = run_once(tree, args.config, listing, root)
                ref_rows = r["rows"] if ref_rows is None else ref_rows
                same = r["rows"] == ref_rows
                r["same_rows"] = same
                runs[side].append(r)
                cpu = r["stage_cpu"]
                print(f"round {i + 1} {side:9s} sum {sum(cpu.values()):6.2f} CPU s  rows {len(r['rows'])} "
                      f"{'identical' if same else 'DIFFER'} | " + " ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
                      flush=True)
        stages = list(runs["baseline"][0]["stage_cpu"])
        print(f"\n{len(CLIPS)} clips, {frames} source frames; CPU ms per source frame, mean of {args.rounds} "
              f"interleaved runs each (baseline {args.baseline})")
        print(f"{'stage':16s} {'baseline':>9s} {'this tree':>10s} {'change':>8s}")
        tot = {}
        for st in stages + ["sum"]:
            vals = {}
            for side in sides:
                per_run = [sum(r["stage_cpu"].values()) if st == "sum" else r["stage_cpu"].get(st, 0.0)
                           for r in runs[side]]
                vals[side] = 1000 * sum(per_run) / len(per_run) / frames
            tot[st] = vals
            b, t = vals["baseline"], vals["this tree"]
            print(f"{st:16s} {b:9.2f} {t:10.2f} {100 * (t - b) / b if b else 0.0:7.1f}%")
        print("rows identical to the first baseline run in every run: "
              f"{all(r['same_rows'] for side in runs.values() for r in side)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
