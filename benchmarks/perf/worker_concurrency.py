"""How many cores one curation worker wants: runnable threads of the worker and its children.

    nice -n 10 .venv/bin/python benchmarks/perf/worker_concurrency.py [--data DIR] [--threads 1]
        [--config single_person]

Runs the pipeline over the 3 shared talking clips in one in-process worker capped to
``--threads`` (as an executor caps a worker with that CPU share) and samples, every 20 ms,
which threads of the process and of its child processes (ffmpeg decoders, ffprobe) are
runnable (state R: running or waiting for a core). The mean number of runnable threads is the
cores the worker would use on an idle machine; it does not shrink when other jobs share the
cores (they only make the threads wait longer), so it is comparable across loads, unlike
CPU / wall. A worker with a 1-CPU share should want 1.0: above that, two such workers on two
cores cannot run twice as fast as one. Prints the mean, the distribution and the share of
samples in which each thread (by name) was runnable. The sampler's own thread is excluded.
Not a test.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _threads(pid: int) -> list[tuple[str, str, str]]:
    """(state, name, tid) of every thread of ``pid``."""
    out = []
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            s = open(t + "/stat").read()
            out.append((s.rsplit(")", 1)[1].split()[0], s[s.index("(") + 1:s.rindex(")")], t.rsplit("/", 1)[1]))
        except (OSError, ValueError, IndexError):  # the thread ended while being read
            pass
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for p in glob.glob("/proc/[0-9]*/stat"):
        try:
            if int(open(p).read().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(p.split("/")[2]))
        except (OSError, ValueError, IndexError):
            pass
    return kids


class RunnableSampler:
    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.hist: collections.Counter = collections.Counter()
        self.by_name: collections.Counter = collections.Counter()
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me, mine = os.getpid(), str(threading.get_native_id())
        while not self._stop.is_set():
            r = 0
            for state, name, tid in _threads(me):
                if state == "R" and tid != mine:
                    r += 1
                    self.by_name["main" if tid == str(me) else name.split("/")[0]] += 1
            for kid in _children(me):
                for state, name, _ in _threads(kid):
                    if state == "R":
                        r += 1
                        self.by_name[f"child {name}"] += 1
            self.hist[r] += 1
            self.n += 1
            time.sleep(self.interval_s)

    def __enter__(self) -> "RunnableSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(k * v for k, v in self.hist.items()) / max(1, self.n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1, help="the worker's CPU share (compute threads)")
    ap.add_argument("--config", default="single_person")
    args = ap.parse_args()
    from pipelines.executors import cap_threads

    cap_threads(args.threads)  # before any stage library loads, as in a worker process
    from kernel.data import DEMO_SINGLE_PERSON as SINGLE
    from kernel.data import resolve_data_root
    from pipelines.runner import run_curation

    root = resolve_data_root(args.data, need=SINGLE).absolute()
    with tempfile.TemporaryDirectory(prefix="worker-concurrency-") as tmp:
        listing = Path(tmp) / "inputs.txt"
        listing.write_text("".join(f"{root / f}\n" for f in SINGLE))
        with RunnableSampler() as sampler:
            t0 = time.perf_counter()
            summary = run_curation(args.config, listing, Path(tmp) / "run", data_root=root, progress=False, workers=1)
            wall = time.perf_counter() - t0
    (secs,) = summary.worker_seconds.values()
    print(f"{args.config}, {len(SINGLE)} clips, one in-process worker capped to {args.threads} thread(s); "
          f"rows {summary.totals}; load average at end {os.getloadavg()[0]:.1f}")
    print(f"wall {wall:.1f} s, busy {secs['busy_s']:.1f} s, CPU {secs['cpu_s']:.1f} s (CPU/busy {secs['cpu_s'] / max(1e-9, secs['busy_s']):.2f}, "
          "lower than the demand below when other jobs share the cores)")
    print(f"mean runnable threads (cores wanted): {sampler.mean:.3f} over {sampler.n} samples; "
          f"distribution {dict(sorted(sampler.hist.items()))}")
    print("share of samples in which each thread was runnable:")
    for name, n in sampler.by_name.most_common(12):
        print(f"  {name:28s} {n / max(1, sampler.n):.3f}")


if __name__ == "__main__":
    main()
