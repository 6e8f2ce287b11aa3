"""Curation throughput vs decode-only throughput, and Ray with 1 vs 2 workers, in one run.

    .venv/bin/python benchmarks/perf/curation_throughput.py [--config single_person] [--data DIR] [--copies 4]

The inputs are the 3 shared talking clips, each remuxed ``--copies`` times with a distinct
title tag (same frames, distinct bytes, so dedupe keeps them all): 12 inputs by default, enough
for two workers to share. Ray is started before the timed runs (start-up is a one-off cost of a
long job, not part of its steady state); model set-up in the actors is timed. Prints frames/s
side by side, their ratios and the peak RSS of every worker process (machines here are noisy:
compare ratios from one run, not absolute numbers across runs). Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from anytalker.cli_demo import SINGLE  # noqa: E402
from anytalker.data import resolve_data_root  # noqa: E402
from curation.media import VideoReader  # noqa: E402
from pipelines.runner import run_curation  # noqa: E402


def decode_only(paths: list[Path]) -> tuple[int, float]:
    t0, frames = time.perf_counter(), 0
    for p in paths:
        vr = VideoReader(p)
        for start in range(0, len(vr), 32):
            frames += len(vr.get(range(start, min(len(vr), start + 32))))
    return frames, time.perf_counter() - t0


def remuxed_copies(paths: list[Path], copies: int, out_dir: Path) -> list[Path]:
    """``copies`` stream-copied remuxes of each path, each with its own title tag."""
    out = []
    for p in paths:
        for k in range(copies):
            dst = out_dir / f"{p.stem}__copy{k}{p.suffix}"
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(p), "-map", "0", "-c", "copy",
                            "-metadata", f"title=anytalker-perf-copy-{k}", str(dst)],
                           check=True, stdin=subprocess.DEVNULL)
            out.append(dst)
    return out


def curate(config: str, listing: Path, root: Path, executor: str, workers: int | None):
    out = Path(tempfile.mkdtemp(prefix="perf-run-"))
    try:
        t0 = time.perf_counter()
        summary = run_curation(config, listing, out / "run", executor=executor, workers=workers, data_root=root,
                               progress=False)
        return time.perf_counter() - t0, summary
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="single_person")
    ap.add_argument("--data", default=None)
    ap.add_argument("--copies", type=int, default=4, help="remuxed copies per shared clip (default 4: 12 inputs)")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    root = resolve_data_root(args.data, need=SINGLE).absolute()
    work = Path(tempfile.mkdtemp(prefix="perf-inputs-"))
    try:
        paths = remuxed_copies([root / f for f in SINGLE], max(1, args.copies), work)
        listing = work / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))

        frames, t_dec = decode_only(paths)
        rows = [("decode only (decord)", t_dec, None)]
        t, summary = curate(args.config, listing, work, "local", None)
        rows.append((f"curate {args.config} local", t, summary))
        if not args.skip_ray:
            import ray

            from pipelines.executors import start_ray

            for w in (1, 2):
                start_ray(w)
                t, summary = curate(args.config, listing, work, "ray", w)
                rows.append((f"curate {args.config} ray x{w}", t, summary))
                ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(paths)} inputs ({len(SINGLE)} clips x {args.copies} remuxed copies), {frames} frames")
    print(f"{'run':34s} {'seconds':>9s} {'frames/s':>10s} {'vs decode':>10s}  accepted  peak RSS per worker (MB)")
    for name, t, summary in rows:
        rss = " ".join(f"{v:.0f}" for _, v in sorted((summary.worker_peak_rss_mb if summary else {}).items()))
        ok = summary.totals.get("ok", 0) if summary else ""
        print(f"{name:34s} {t:9.2f} {frames / t:10.1f} {t_dec / t:10.3f}  {ok!s:>8s}  {rss}")
    times = {n: t for n, t, _ in rows}
    local = times.get(f"curate {args.config} local")
    t1, t2 = times.get(f"curate {args.config} ray x1"), times.get(f"curate {args.config} ray x2")
    if t1 and t2:
        print(f"ray speed-up 2 workers vs 1: {t1 / t2:.2f}x (target >= 1.7)")
    if t1 and local:
        print(f"ray 1 worker vs local: {t1 / local:.2f}x the local time (target within 15 %)")


if __name__ == "__main__":
    main()
