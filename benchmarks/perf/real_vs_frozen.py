"""Score the published benchmark clip as submitted and a copy whose first frame is frozen for the
whole clip (same audio), side by side in one run, with the default ``scoring.yaml``.

    python benchmarks/perf/real_vs_frozen.py --data ../shared/data [--json out.json]

Prints one row per submission and one column per metric of the scoring file (whatever metric
names and backends it pins), so the table in docs/benchmarks.md is rerunnable as the metrics change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

META = {"benchmark": "interactive_eyes", "version": "v1", "revision": "e5490b6"}


def _submission(root: Path, name: str, video: Path) -> Path:
    from benchmarks.manifest import load_benchmark

    sub = root / name
    sub.mkdir(parents=True)
    shutil.copyfile(video, sub / load_benchmark().item("interact_11").video_file)
    (sub / "submission.json").write_text(json.dumps({**META, "model": name}))
    return sub


def _frozen(src: Path, dest: Path) -> Path:
    """First frame held for the clip's duration, the original audio track kept."""
    # freezeframes keeps every timestamp (same frame count and duration), only the pictures repeat
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-filter_complex",
                    "[0:v]split[a][b];[a][b]freezeframes=first=1:last=1000000:replace=0[v]",
                    "-map", "[v]", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast",
                    "-pix_fmt", "yuv420p", "-c:a", "copy", str(dest)], check=True, stdin=subprocess.DEVNULL)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root holding anytalker_benchmark/ (layout as ../shared/data; "
                    "default: the kernel.data resolver)")
    ap.add_argument("--json", help="also write the figures as JSON to this path")
    args = ap.parse_args(argv)

    from kernel.data import resolve_data_root
    from kernel.errors import UserError

    try:
        data = resolve_data_root(args.data, need=("anytalker_benchmark/interact_11.mp4",))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    clip = data / "anytalker_benchmark" / "interact_11.mp4"
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="real-vs-frozen-") as tmp:
        tmp = Path(tmp)
        subs = {"real clip": _submission(tmp, "real", clip),
                "frozen first frame": _submission(tmp, "frozen", _frozen(clip, tmp / "frozen.mp4"))}
        for label, sub in subs.items():
            res = tmp / f"{sub.name}.json"
            t0 = time.perf_counter()
            # the CLI as a user runs it, in its own process: benchmarks never import the CLI package
            rc = subprocess.run([sys.executable, "-m", "anytalker.cli", "bench", "score", str(sub), "--items",
                                 "interact_11", "--data", str(data), "--output", str(res), "-q"],
                                stdin=subprocess.DEVNULL, cwd=REPO).returncode
            if rc != 0:
                return rc
            doc = json.loads(res.read_text())
            out[label] = {"wall_s": round(time.perf_counter() - t0, 1),
                          "metrics": {n: {k: m.get(k) for k in ("value", "backend", "backend_version", "version",
                                                                 "higher_is_better", "n_scored", "failures")}
                                      for n, m in doc["metrics"].items()}}
    names = list(next(iter(out.values()))["metrics"])
    arrows = {n: "↑" if out["real clip"]["metrics"][n]["higher_is_better"] else "↓" for n in names}
    print("| submission | " + " | ".join(f"{n} {arrows[n]}" for n in names) + " | wall s |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label, r in out.items():
        cells = [("n/a" if r["metrics"][n]["value"] is None else f"{r['metrics'][n]['value']:.3f}") for n in names]
        print(f"| {label} | " + " | ".join(cells) + f" | {r['wall_s']} |")
    print("backends: " + "; ".join(f"{n}: {m['backend']} {m['backend_version']} (v{m['version']})"
                                   for n, m in out["real clip"]["metrics"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
