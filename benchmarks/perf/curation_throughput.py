"""Curation throughput vs decode-only throughput: local x1 / default workers, Ray x1 / x2, in one run.

    nice -n 10 .venv/bin/python benchmarks/perf/curation_throughput.py [--config single_person]
        [--data DIR] [--copies 4] [--skip-ray]

The 3 shared talking clips are replicated ``--copies`` times with distinct bytes (remuxed with
a different container comment, so the run's sha256 dedupe does not collapse them): 12 inputs
by default. Prints, side by side from one run: frames/s of decode only (decord at full
resolution, the reference of issue 12; and the ffmpeg pipe at the analysis size that the
stages share), of each curation run (local in-process; local with its default worker
processes, one per CPU; Ray with 1 worker given the whole machine, with 1 worker given 1 CPU,
and with 2 workers of 1 CPU each), their ratios and CPU ms per source frame, the issue 12
targets with what each compares, the per-stage cost table of the local run
(seconds and ms per source frame: wall and CPU time of each stage's batches in the local run,
model set-up excluded), each worker's set-up / busy / CPU seconds, the processing window
(first source started on any worker -> last one finished: the same ratios without the one-off
start-up of Ray, actors and models, what a long run tends to), and the peak RSS of
the process that ran each curation (each run is a fresh child process) and of its largest
decoder child. Machines here are noisy: compare ratios from one run, not absolute numbers
across runs. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.perf.result_child import run_result_child  # noqa: E402
from kernel.data import DEMO_SINGLE_PERSON as SINGLE  # noqa: E402
from kernel.data import resolve_data_root  # noqa: E402
from curation.media import VideoReader, require_ffmpeg  # noqa: E402
from pipelines.executors import machine_cpus  # noqa: E402


def replicate(paths: list[Path], copies: int, out: Path) -> list[Path]:
    """``copies`` remuxes of every clip, each with its own bytes (container comment)."""
    exe = require_ffmpeg()
    made = []
    for i in range(copies):
        for p in paths:
            dst = out / f"{p.stem}__copy{i}.mp4"
            subprocess.run([exe, "-nostdin", "-v", "error", "-y", "-i", str(p), "-map", "0", "-c", "copy",
                            "-metadata", f"comment=anytalker perf copy {i}", str(dst)],
                           check=True, stdin=subprocess.DEVNULL)
            made.append(dst)
    return made


def decode_decord(paths: list[Path]) -> tuple[int, float]:
    t0, frames = time.perf_counter(), 0
    for p in paths:
        vr = VideoReader(p)
        for start in range(0, len(vr), 32):
            frames += len(vr.get(range(start, min(len(vr), start + 32))))
    return frames, time.perf_counter() - t0


def decode_pipe(paths: list[Path]) -> tuple[int, float]:
    from curation.decode import decode_frames

    t0, frames = time.perf_counter(), 0
    for p in paths:
        frames += len(decode_frames(p).frames)
    return frames, time.perf_counter() - t0


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    import curation.base as base

    # wall and CPU time of every stage batch in this process (local executor), model set-up
    # excluded; CPU = this process (all its threads) + its reaped children (the ffmpeg decoders);
    # rows' stage_seconds cannot be summed: fan-out copies a parent's timings into every child
    stage_wall, stage_cpu, _run = {}, {}, base.run_stage_batch

    def cpu():
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def timed(stage, rows):
        stage.ensure_setup()
        t, c = time.perf_counter(), cpu()
        out = _run(stage, rows)
        stage_wall[stage.name] = stage_wall.get(stage.name, 0.0) + time.perf_counter() - t
        stage_cpu[stage.name] = stage_cpu.get(stage.name, 0.0) + cpu() - c
        return out

    base.run_stage_batch = timed  # before pipelines binds the name
    from pipelines.runner import run_curation
    from pipelines.shards import read_rows
    config, listing, out, executor, workers, root, cpus, ray_start = sys.argv[1:9]
    workers = None if workers == "-" else int(workers)
    cpus = None if cpus == "-" else int(cpus)
    if executor == "ray" and ray_start == "outside":
        # Ray start-up is a one-off cost of a long job: outside the timed run (ray.init returns
        # before the workers it prestarts are up: they finish starting inside the timed run)
        from pipelines.executors import start_ray
        start_ray(workers, cpus_per_worker=cpus)
    def ray_cpu_by_role():
        # CPU seconds so far of every process of the runtime this process started (owner-tagged), by role
        import os, psutil
        from pipelines.rayutil import OWNER_ENV, owner_token
        token, out = owner_token(), {}
        for p in psutil.process_iter(["pid"]):
            try:
                if p.pid == os.getpid() or p.environ().get(OWNER_ENV) != token:
                    continue
                cmd = " ".join(p.cmdline())
                ct = p.cpu_times()
            except (psutil.Error, OSError):
                continue
            role = ("raylet" if "raylet" in cmd.split(" ")[0] else "gcs_server" if "gcs_server" in cmd
                    # Ray Data's own helper actors and idle prestarted workers, apart from the run's actors
                    else "ray data helpers" if cmd.startswith(("ray::_StatsActor", "ray::_AutoscalingCoordinator",
                                                               "ray::ActorLocationTracker", "ray::IDLE"))
                    else "workers" if cmd.startswith("ray::") or "default_worker" in cmd
                    else "dashboard/agents" if "dashboard" in cmd or "agent" in cmd
                    else "log_monitor" if "log_monitor" in cmd else p.name())
            out[role] = out.get(role, 0.0) + ct.user + ct.system + ct.children_user + ct.children_system
        me = psutil.Process().cpu_times()
        out["driver"] = me.user + me.system
        return out

    measure_ray = executor == "ray" and ray_start == "outside"  # a run that starts Ray also ends it
    ray_cpu0 = ray_cpu_by_role() if measure_ray else {}
    t0, t0_epoch = time.perf_counter(), time.time()
    summary = run_curation(config, Path(listing), Path(out), executor=executor, workers=workers,
                           cpus_per_worker=cpus, data_root=Path(root), progress=False)
    wall, t1_epoch = time.perf_counter() - t0, time.time()
    ray_cpu = {k: v - ray_cpu0.get(k, 0.0) for k, v in ray_cpu_by_role().items()} if measure_ray else {}
    status = {}
    for r in read_rows(out) + read_rows(out, kind="rejects"):
        status[r["status"]] = status.get(r["status"], 0) + 1
    stages = stage_wall
    ru = resource.getrusage
    print("RESULT " + json.dumps({"wall": wall, "stages": stages, "stage_cpu": stage_cpu, "status": status,
                                  "worker_seconds": summary.worker_seconds,
                                  "phases": summary.executor_phases,
                                  "start_epoch": t0_epoch, "ray_cpu": ray_cpu, "end_epoch": t1_epoch,
                                  # the whole run's CPU: this driver + every reaped worker and decoder
                                  "run_cpu_s": cpu(),
                                  "rss_mb": ru(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                  "child_rss_mb": ru(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                                  "worker_rss_mb": summary.worker_peak_rss_mb}))
""")


def curate(config: str, listing: Path, root: Path, executor: str, workers: int | None,
           cpus_per_worker: int | None = None, env_extra: dict | None = None, ray_start: str = "outside") -> dict:
    out = Path(tempfile.mkdtemp(prefix="perf-run-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **(env_extra or {})}
        return run_result_child(_CHILD, [config, str(listing), str(out / "run"), executor,
                                         "-" if workers is None else str(workers), str(root),
                                         "-" if cpus_per_worker is None else str(cpus_per_worker), ray_start],
                                env, f"curation run ({executor})")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="single_person")
    ap.add_argument("--data", default=None)
    ap.add_argument("--copies", type=int, default=4,
                    help="replicas of each of the 3 clips (default 4 -> 12 inputs, the issue's minimum; each copy adds "
                         "~825 frames, ~20 s of one-worker work on 2 cores: more copies weigh the one-off start-up "
                         "less, 1 copy is a quick smoke run whose x2 / x1 ratios are mostly start-up)")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--runs", default=None,
                    help="comma-separated subset of the curation runs (local-x1, local-default, ray-x1, ray-x1-1cpu, "
                         "ray-x2; and, only when named, ray-x2-given-order, ray-x2-ray-niceness, ray-x1-1cpu-cold, ray-x2-cold); "
                         "default all "
                         "five. The targets need all five")
    ap.add_argument("--ray-start", choices=("outside", "inside"), default="outside",
                    help="outside (default, as in every figure so far): each Ray run's child starts Ray before its "
                         "timer; inside: the run starts Ray itself, as `anytalker curate run` does (ray.init "
                         "timed, overlapped with the driver's config load and hashing)")
    args = ap.parse_args()
    root = resolve_data_root(args.data, need=SINGLE).absolute()
    work = Path(tempfile.mkdtemp(prefix="perf-inputs-"))
    try:
        paths = replicate([root / f for f in SINGLE], max(1, args.copies), work)
        listing = work / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))

        frames, t_dec = decode_decord(paths)
        _, t_pipe = decode_pipe(paths)
        runs = [("decode only (decord, full size)", t_dec, None), ("decode only (ffmpeg pipe, analysis size)", t_pipe, None)]
        cpus = machine_cpus()
        # (name, executor, workers, CPUs per worker); None CPUs: an equal share of the machine
        plan = [("local x1", "local", 1, None, "local-x1"),
                (f"local x{cpus} (default)", "local", None, None, "local-default")]
        if not args.skip_ray:
            plan += [("ray x1", "ray", 1, None, "ray-x1"), ("ray x1, 1 CPU", "ray", 1, 1, "ray-x1-1cpu"),
                     ("ray x2", "ray", 2, None, "ray-x2")]
        # what a change is worth, side by side in one run (only with --runs): Ray x2 with the
        # sources in their given (name) order, and with Ray's own worker priority (15 nice
        # levels below the driver; the engine now runs them at the driver's)
        extra_runs = [("ray x2, given order", "ray", 2, None, "ray-x2-given-order"),
                      ("ray x2, Ray's worker niceness", "ray", 2, None, "ray-x2-ray-niceness"),
                      ("ray x1, 1 CPU, cold start", "ray", 1, 1, "ray-x1-1cpu-cold"),
                      ("ray x2, cold start", "ray", 2, None, "ray-x2-cold")]
        # cold start: workers do not import Ray Data as they start (pipelines.rayutil.WARM_ENV=0;
        # the engine before 2026-12-01 08:30 UTC)
        run_env = {"ray-x2-given-order": {"ANYTALKER_SOURCE_ORDER": "given"},
                   "ray-x2-ray-niceness": {"RAY_worker_niceness": "15"},
                   "ray-x1-1cpu-cold": {"ANYTALKER_RAY_WARM": "0"}, "ray-x2-cold": {"ANYTALKER_RAY_WARM": "0"}}
        if args.runs:
            wanted = {x.strip() for x in args.runs.split(",") if x.strip()}
            choices = plan + extra_runs
            unknown = wanted - {p[4] for p in choices}
            if unknown:
                raise SystemExit(f"--runs: unknown run(s) {sorted(unknown)}; choose from {[p[4] for p in choices]}")
            plan = [p for p in choices if p[4] in wanted]
        results = {}
        for label, executor, workers, per, key in plan:
            r = curate(args.config, listing, work, executor, workers, per, run_env.get(key), args.ray_start)
            results[label] = r
            runs.append((f"curate {args.config} {label}", r["wall"], r))
        local = results.get("local x1")

        print(f"{len(paths)} inputs ({args.copies} distinct-byte copies of {len(SINGLE)} clips), {frames} frames, "
              f"{cpus} CPUs; load average at end {os.getloadavg()[0]:.1f}")
        print("CPU ms/frame: the workers' threads + their decoder children while busy, per source frame "
              "(moves far less with the machine's load than seconds)")
        print(f"{'run':46s} {'seconds':>9s} {'frames/s':>10s} {'vs decode':>10s} {'CPU ms/frame':>13s} "
              f"{'peak RSS MB':>12s} {'decoder MB':>11s}")
        for name, t, r in runs:
            rss = f"{r['rss_mb']:12.0f} {r['child_rss_mb']:11.0f}" if r else f"{'':12s} {'':11s}"
            cpu = sum(v.get("cpu_s", 0.0) for v in (r or {}).get("worker_seconds", {}).values())
            cpu_col = f"{1000 * cpu / frames:13.2f}" if r else f"{'':13s}"
            workers_rss = " ".join(f"{v:.0f}" for _, v in sorted((r or {}).get("worker_rss_mb", {}).items()))
            print(f"{name:46s} {t:9.2f} {frames / t:10.1f} {t_dec / t:10.3f} {cpu_col} {rss}  workers: {workers_rss or '-'}")
        wall = {k: v["wall"] for k, v in results.items()}
        print("\nissue 12 targets (wall, this run):")
        if f"local x{cpus} (default)" in wall:
            print(f"  local default ({cpus} workers) vs decode only: {t_dec / wall[f'local x{cpus} (default)']:.3f}x "
                  "(target >= 0.3)")
        if "local x1" in wall:
            print(f"  local x1 vs decode only: {t_dec / wall['local x1']:.3f}x")
        if {"ray x1", "ray x2", "ray x1, 1 CPU", "local x1"} <= set(wall):
            print(f"  ray x1 vs local x1 (both one worker with the whole machine): {wall['local x1'] / wall['ray x1']:.2f}x "
                  "(target: within 15 %)")
            print(f"  ray x2 vs ray x1: {wall['ray x1'] / wall['ray x2']:.2f}x (target >= 1.7); ray x2 vs ray x1 with "
                  f"1 CPU (equal CPUs per worker): {wall['ray x1, 1 CPU'] / wall['ray x2']:.2f}x")
        print("rows: " + "; ".join(f"{k} {v['status']}" for k, v in results.items()))
        # the processing window: first source started on any worker -> last source finished;
        # what a long run's throughput tends to (start-up of Ray, actors and models excluded)
        win = {}
        for name, _, r in runs:
            ws = [v for v in (r or {}).get("worker_seconds", {}).values() if v.get("first_start") and v.get("last_end")]
            if ws:
                win[name] = max(v["last_end"] for v in ws) - min(v["first_start"] for v in ws)
        if win:
            print("\nsteady state: the processing window (first source started on any worker -> last source "
                  "finished; start-up excluded, what a long run tends to):")
            print(f"{'run':42s} {'seconds':>9s} {'frames/s':>10s} {'vs decode':>10s} {'sources/s':>10s}")
            for name, w in win.items():
                print(f"{name:42s} {w:9.2f} {frames / w:10.1f} {t_dec / w:10.3f} {len(paths) / w:10.3f}")
            w_loc, w1, w1c, w2 = (win.get(f"curate {args.config} {k}") for k in ("local x1", "ray x1", "ray x1, 1 CPU",
                                                                                  "ray x2"))
            if w1 and w2 and w_loc and w1c:
                print(f"window ratios: ray x2 vs x1 {w1 / w2:.2f}x (vs x1 with 1 CPU {w1c / w2:.2f}x); "
                      f"ray x1 vs local x1 {w_loc / w1:.2f}x")
        print("\noverhead (wall outside the processing window; CPU of the whole run = driver + workers + decoders, "
              "minus the workers' CPU while running sources; tail idle: first worker done -> last worker done):")
        print(f"{'run':42s} {'before 1st source s':>20s} {'after last source s':>20s} {'run CPU s':>10s} "
              f"{'overhead CPU s':>15s} {'tail idle s':>12s}")
        for name, _, r in runs:
            ws = [v for v in (r or {}).get("worker_seconds", {}).values() if v.get("first_start") and v.get("last_end")]
            if not ws or "start_epoch" not in r:
                continue
            busy_cpu = sum(v.get("cpu_s", 0.0) for v in r["worker_seconds"].values())
            # Ray's workers are not this driver's reaped children: their CPU is not in run_cpu_s
            cpu_cols = (f"{'-':>10s} {'-':>15s}" if " ray " in f" {name} " else
                        f"{r['run_cpu_s']:10.2f} {r['run_cpu_s'] - busy_cpu:15.2f}")
            # tail idle: how long the first worker to finish waited for the last (one core idle)
            print(f"{name:42s} {min(v['first_start'] for v in ws) - r['start_epoch']:20.2f} "
                  f"{r['end_epoch'] - max(v['last_end'] for v in ws):20.2f} {cpu_cols} "
                  f"{max(v['last_end'] for v in ws) - min(v['last_end'] for v in ws):12.2f}")
        print("\ntime to the first source, split (s from the run's start; per worker: its process started, its "
              "set-up began, set-up ended, its first source started):")
        for name, _, r in runs:
            if (r or {}).get("phases") and "start_epoch" in r:
                print(f"  {name:42s} driver: " + ", ".join(f"{k} {v - r['start_epoch']:.2f}"
                                                          for k, v in sorted(r["phases"].items(), key=lambda kv: kv[1])))
            for w, v in sorted((r or {}).get("worker_seconds", {}).items()):
                if not (v.get("born") and v.get("first_start") and "start_epoch" in r):
                    continue
                t0 = r["start_epoch"]
                ps = v.get("process_start")
                print(f"  {name:42s} {w:>14s} process {('%.2f' % (ps - t0)) if ps else '-':>6s}  set-up "
                      f"{v['born'] - t0:5.2f} -> {v['born'] - t0 + v.get('setup_s', 0):5.2f}  first source "
                      f"{v['first_start'] - t0:5.2f}")
        ray_runs = [(name, r) for name, _, r in runs if (r or {}).get("ray_cpu")]
        if ray_runs:
            print("\nRay runtime CPU during each run (CPU s of the processes still alive at its end, and CPU per wall "
                  "second: what the 2 cores spend beside the actors' own work; actors that ended are not listed):")
            for name, r in ray_runs:
                parts = ", ".join(f"{k} {v:.2f} ({v / r['wall']:.3f}/s)" for k, v in sorted(r["ray_cpu"].items(),
                                                                                       key=lambda kv: -kv[1]))
                print(f"  {name}: {parts}")
        print("\nworkers (set-up: imports + model loads, once per worker; busy: running sources; CPU: the "
              "worker's threads + its decoder children while busy):")
        print(f"{'run':42s} {'worker':>14s} {'set-up s':>9s} {'busy s':>8s} {'CPU s':>8s} {'CPU/busy':>9s} "
              f"{'gaps s':>7s}")
        for name, _, r in runs:
            for w, v in sorted((r or {}).get("worker_seconds", {}).items()):
                busy = v.get("busy_s") or 0.0
                # gaps: the worker's own first source -> last source, not running one (waiting for input)
                gaps = (v["last_end"] - v["first_start"] - busy) if v.get("first_start") and v.get("last_end") else 0.0
                print(f"{name:42s} {w:>14s} {v.get('setup_s', 0):9.2f} {busy:8.2f} {v.get('cpu_s', 0):8.2f} "
                      f"{(v.get('cpu_s', 0) / busy if busy else 0):9.2f} {gaps:7.2f}")
        if local is None:
            return
        print(f"\nper-stage cost, local x1 run ({frames} source frames; wall and CPU time of the stage's batches, "
              "CPU = process threads + decoder children):")
        total = sum(local["stages"].values()) or 1.0
        total_cpu = sum(local.get("stage_cpu", {}).values()) or 1.0
        print(f"{'stage':16s} {'seconds':>9s} {'ms/frame':>9s} {'share':>7s} {'CPU s':>8s} {'CPU ms/frame':>13s} {'CPU share':>10s}")
        for k, v in sorted(local["stages"].items(), key=lambda kv: -kv[1]):
            c = local.get("stage_cpu", {}).get(k, 0.0)
            print(f"{k:16s} {v:9.2f} {1000 * v / frames:9.2f} {v / total:7.1%} {c:8.2f} {1000 * c / frames:13.2f} "
                  f"{c / total_cpu:10.1%}")
        print(f"{'(sum)':16s} {total:9.2f} {1000 * total / frames:9.2f} {'':7s} {total_cpu:8.2f} "
              f"{1000 * total_cpu / frames:13.2f}; wall {local['wall']:.2f} s "
              f"(the rest: imports, model set-up, shards, manifest)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
