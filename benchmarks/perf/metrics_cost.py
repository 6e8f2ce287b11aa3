"""Scoring cost of each metric, in wall seconds per second of video (CPU, this machine).

    .venv/bin/python benchmarks/perf/metrics_cost.py [--video interact_11.mp4 --intervals speaker_duration.json]
        [--fid-weights inception-2015-12-05.pt] [--fvd-weights i3d_torchscript.pt] [--syncnet-weights syncnet_v2.model]

Wall time depends on the machine's load; CPU time (all threads of this process) less so.
Each metric is timed twice on one video, its face analysis included both times (the shared
analysis cache is cleared before each run): the first run in this process also pays one-off
imports and model loads (``first cpu/s``), the second is the per-video cost of scoring many
videos (``wall/video s``, ``cpu/video s``). FID / FVD / SyncNet need their network files; without them
the line says so instead of timing a stand-in network.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

SHARED = default_data_root()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=SHARED / "anytalker_benchmark" / "interact_11.mp4")
    p.add_argument("--intervals", type=Path, default=SHARED / "anytalker_benchmark" / "speaker_duration.json")
    p.add_argument("--fid-weights", type=Path)
    p.add_argument("--fvd-weights", type=Path)
    p.add_argument("--syncnet-weights", type=Path)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from curation.media import probe
    from metrics import Sample, _analysis, get_metric
    from metrics.intervals import load_speaker_durations, lookup_intervals

    if not args.video.is_file():
        print(f"{args.video}: video not found; pass --video or set ANYTALKER_DATA", file=sys.stderr)
        return 2
    duration = probe(args.video).duration_s
    iv = lookup_intervals(load_speaker_durations(args.intervals), args.video) if args.intervals.is_file() else None
    sample = Sample(args.video.name, str(args.video), speaking_intervals=iv, reference_path=str(args.video))

    # lipsync_judge (LSE-J) is the default lip-sync metric; Sync-C is SyncNet's and needs its weights
    runs = [("lipsync_judge", {}), ("lipsync_judge_star", {}), ("identity", {}), ("interactivity", {})]
    if args.syncnet_weights:
        runs.append(("sync_c", {"backend": "syncnet", "weights": str(args.syncnet_weights)}))
    else:
        runs.append(("sync_c", None))
    runs += [("fid", {"weights": str(args.fid_weights)} if args.fid_weights else None),
             ("fvd", {"weights": str(args.fvd_weights)} if args.fvd_weights else None)]

    print(f"video: {args.video} ({duration:.2f} s); torch threads {args.threads}")
    print(f"{'metric':<18} {'backend':<28} {'value':>9} {'wall s':>8} {'wall/video s':>12} {'cpu/video s':>12} "
          f"{'first cpu/s':>12}")
    for name, opts in runs:
        if opts is None:
            flag = "syncnet" if name == "sync_c" else name
            print(f"{name:<18} {'-':<28} {'-':>9} {'-':>8} {'-':>12} {'-':>12} {'-':>12}  not timed: needs its network "
                  f"file (--{flag}-weights); it cannot be downloaded here")
            continue
        timings = []
        for _ in range(2):
            _analysis.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            metric = get_metric(name, **opts)
            if sample.speaking_intervals is None and "speaking_intervals" in metric.requires:
                break
            res = metric.evaluate([sample])
            timings.append((time.perf_counter() - t0, time.process_time() - c0))
        if not timings:
            print(f"{name:<18} skipped: no intervals for {args.video.name}")
            continue
        (_, cpu_first), (wall, cpu) = timings
        value = f"{res.value:.4f}" if res.n_scored else f"fail:{next(iter(res.failures))}"
        backend = f"{res.backend} {res.backend_version}"[:28]
        print(f"{name:<18} {backend:<28} {value:>9} {wall:8.2f} {wall / duration:12.3f} {cpu / duration:12.3f} "
              f"{cpu_first / duration:12.3f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
