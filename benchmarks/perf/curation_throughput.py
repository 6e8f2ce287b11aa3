"""Curation throughput vs decode-only throughput, and Ray with 1 vs 2 workers, in one run.

    .venv/bin/python benchmarks/perf/curation_throughput.py [--config single_person] [--data DIR]

Prints frames/s side by side and their ratios (machines here are noisy: compare ratios from
one run, not absolute numbers across runs). Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernel.data import DEMO_SINGLE_PERSON as SINGLE  # noqa: E402
from kernel.data import resolve_data_root  # noqa: E402
from curation.media import VideoReader  # noqa: E402
from pipelines.runner import run_curation  # noqa: E402


def decode_only(paths: list[Path]) -> tuple[int, float]:
    t0, frames = time.perf_counter(), 0
    for p in paths:
        vr = VideoReader(p)
        for start in range(0, len(vr), 32):
            frames += len(vr.get(range(start, min(len(vr), start + 32))))
    return frames, time.perf_counter() - t0


def curate(config: str, listing: Path, root: Path, executor: str, workers: int | None) -> float:
    out = Path(tempfile.mkdtemp(prefix="perf-run-"))
    try:
        t0 = time.perf_counter()
        run_curation(config, listing, out / "run", executor=executor, workers=workers, data_root=root,
                     progress=False)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="single_person")
    ap.add_argument("--data", default=None)
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    root = resolve_data_root(args.data, need=SINGLE).absolute()
    paths = [root / f for f in SINGLE]
    listing = Path(tempfile.mkdtemp()) / "inputs.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))

    frames, t_dec = decode_only(paths)
    rows = [("decode only (decord)", t_dec)]
    rows.append((f"curate {args.config} local", curate(args.config, listing, root, "local", None)))
    if not args.skip_ray:
        import ray

        for w in (1, 2):
            rows.append((f"curate {args.config} ray x{w}", curate(args.config, listing, root, "ray", w)))
            ray.shutdown()
    print(f"{len(paths)} clips, {frames} frames")
    print(f"{'run':34s} {'seconds':>9s} {'frames/s':>10s} {'vs decode':>10s}")
    for name, t in rows:
        print(f"{name:34s} {t:9.2f} {frames / t:10.1f} {t_dec / t:10.3f}")
    ray_rows = {n: t for n, t in rows if " ray x" in n}
    if len(ray_rows) == 2:
        t1, t2 = ray_rows[f"curate {args.config} ray x1"], ray_rows[f"curate {args.config} ray x2"]
        print(f"ray speed-up 2 workers vs 1: {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
