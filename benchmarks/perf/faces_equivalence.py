"""Is the fast face pass equivalent to the reference one for the sync judge? Side by side in one run.

    nice -n 10 .venv/bin/python benchmarks/perf/faces_equivalence.py [--data ../shared/data]

Three passes of ``curation.faces.analyze_video`` over each talking clip at 25 fps:

* ``ref``: detection on every frame + mediapipe's face-mesh solution in static-image mode
  (``StaticFaceMesh``; the pass LSE-J used before ANALYSIS_VERSION 2);
* ``ref5``: the same mesh, detection on every 5th frame (the faces stage before version 2);
* ``new``: the default pass (detection every 5th frame, ``FaceMesh`` on the region of interest
  from the tracked box and eyes, batched).

For each pair it prints the mean absolute difference of the sync judge's ``lip_features``
(eye-aligned lip points, unit = inter-ocular distance) on the frames where both passes have a
mesh, the frames where only one has one, and each pass's CPU seconds; then LSE-J (the default
lip-sync metric) of every clip computed from each pass. ``ref`` vs ``ref5`` is the reference's
own sensitivity to a change of its detection schedule: a ``new`` vs ``ref`` difference of the
same size changes nothing the judge could tell. Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.perf.faces_cost import CLIPS  # noqa: E402  (the same clips as the cost table)
from kernel.data import default_data_root  # noqa: E402

PASSES = ("ref", "ref5", "new")


def run_pass(path: Path, kind: str):
    from curation.faces import _cached, analyze_video

    mesh = _cached("static_mesh") if kind.startswith("ref") else _cached("mesh")
    c0 = time.process_time()
    fa = analyze_video(path, fps=25.0, detect_every=1 if kind == "ref" else 5, mesh=mesh)
    return fa, time.process_time() - c0


def lips(track) -> np.ndarray:
    from curation.sync_judge.features import lip_features

    out = lip_features(track.landmarks)
    out[~track.detected] = np.nan
    return out


def compare(a, b) -> tuple[float, int, int, int]:
    """(mean |diff| over frames both have, frames both, only a, only b), tracks paired by order."""
    diffs, both, only_a, only_b = [], 0, 0, 0
    for ta, tb in zip(a.tracks, b.tracks):
        la, lb = lips(ta), lips(tb)
        n = min(len(la), len(lb))
        oka, okb = np.isfinite(la[:n]).all(1), np.isfinite(lb[:n]).all(1)
        m = oka & okb
        both += int(m.sum())
        only_a += int((oka & ~okb).sum())
        only_b += int((okb & ~oka).sum())
        if m.any():
            diffs.append(np.abs(la[:n][m] - lb[:n][m]).reshape(-1))
    d = float(np.mean(np.concatenate(diffs))) if diffs else float("nan")
    return d, both, only_a, only_b


def lse_j(path: Path, analysis) -> str:
    from curation.media import file_key
    from metrics import Sample, _analysis, get_metric

    _analysis.clear()
    _analysis._CACHE[(file_key(path), 25.0, True, 6)] = analysis  # score this pass
    res = get_metric("lipsync_judge").evaluate([Sample(path.name, str(path))])
    _analysis.clear()
    return f"{res.value:.4f}" if res.n_scored else f"skip:{next(iter(res.failures))}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    root = Path(args.data or default_data_root())
    import torch

    torch.set_num_threads(1)
    rows = []
    for rel in CLIPS:
        p = root / rel
        if not p.exists():
            print(f"skip {rel}: not found under {root}")
            continue
        res = {k: run_pass(p, k) for k in PASSES}
        row = {"clip": p.name[:34], "frames": len(res["new"][0].frame_indices),
               "tracks": "/".join(str(len(res[k][0].tracks)) for k in PASSES),
               "cpu": {k: res[k][1] for k in PASSES}}
        for a, b in (("ref", "ref5"), ("ref", "new"), ("ref5", "new")):
            row[f"{a}-{b}"] = compare(res[a][0], res[b][0])
        row["lse_j"] = {k: lse_j(p, res[k][0]) for k in PASSES}
        rows.append(row)

    print("mean |lip_features| difference (inter-ocular units) on frames both passes meshed; "
          "(frames both / only first / only second)")
    print(f"{'clip':34s} {'T':>4s} {'tracks':>6s} {'ref vs ref5':>26s} {'ref vs new':>26s} {'ref5 vs new':>26s}")
    for r in rows:
        cells = [f"{r[k][0]:.4f} ({r[k][1]}/{r[k][2]}/{r[k][3]})" for k in ("ref-ref5", "ref-new", "ref5-new")]
        print(f"{r['clip']:34s} {r['frames']:4d} {r['tracks']:>6s} " + " ".join(f"{c:>26s}" for c in cells))
    print(f"\n{'clip':34s} {'LSE-J ref':>10s} {'ref5':>10s} {'new':>10s}   "
          f"{'CPU s ref':>10s} {'ref5':>8s} {'new':>8s}")
    for r in rows:
        print(f"{r['clip']:34s} {r['lse_j']['ref']:>10s} {r['lse_j']['ref5']:>10s} {r['lse_j']['new']:>10s}   "
              f"{r['cpu']['ref']:10.2f} {r['cpu']['ref5']:8.2f} {r['cpu']['new']:8.2f}")
    if rows:
        tot = {k: sum(r["cpu"][k] for r in rows) for k in PASSES}
        print(f"{'(total CPU s)':34s} {'':>10s} {'':>10s} {'':>10s}   {tot['ref']:10.2f} {tot['ref5']:8.2f} {tot['new']:8.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
