"""Soak test: curate the shared talking clips replicated to N inputs with the Ray executor and
check that throughput holds and memory stays flat as N grows.

    .venv/bin/python benchmarks/perf/soak.py [--n 10,50,200] [--config video_only] [--workers 2]
                                             [--data DIR] [--json OUT.json]

Inputs are symlinks with distinct names (``soak_0000_<clip>.mp4`` ...) to ``DATA/talking/*.mp4``
in a temporary folder, so no media is copied. All sizes run in one local Ray runtime (started
here with ``num_cpus=--workers``), one after another, the way a long job would see them.
A sampler thread reads the resident set size (RSS) of this driver and of every process it
started (Ray's GCS, raylet and worker processes) every 0.5 s with psutil; the table shows the
peak per N and the RSS left after each N. Summed RSS counts pages shared between processes
(libraries, Ray's object store) once per process; the PSS column splits shared pages among
their users, so it is the better estimate of what the machine really spends. Memory is "flat" when the peak at the largest N is
within ``--flat-tolerance`` (default 25%) of the peak at the smallest N. Not a test: numbers
depend on the machine and its load (compare sizes within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernel.data import resolve_data_root  # noqa: E402
from pipelines import shards  # noqa: E402
from pipelines.runner import run_curation  # noqa: E402

MB = 1024 * 1024


def _psutil():
    # Ray ships psutil in ray/thirdparty_files and puts it on sys.path when imported
    import ray  # noqa: F401
    import psutil

    return psutil


@dataclass
class MemorySample:
    t: float
    driver_mb: float
    ray_system_mb: float  # gcs_server, raylet, dashboard agents, ...
    workers_mb: float  # ray::* worker processes (tasks and actors)
    max_worker_mb: float
    n_workers: int
    pss_mb: float  # proportional set size of the whole tree: shared pages counted once

    @property
    def total_mb(self) -> float:
        return self.driver_mb + self.ray_system_mb + self.workers_mb


class RssSampler(threading.Thread):
    """Samples the RSS of this process tree every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.psutil = _psutil()
        self.interval = interval
        self.samples: list[MemorySample] = []
        self._halt = threading.Event()
        self._me = self.psutil.Process(os.getpid())

    def sample(self) -> MemorySample:
        ps = self.psutil
        driver = self._me.memory_info().rss
        pss = self._pss(self._me)
        system = workers = biggest = 0
        n = 0
        for child in self._me.children(recursive=True):
            # a worker can exit between listing and reading it: read everything inside the try
            try:
                rss = child.memory_info().rss
                cmdline = " ".join(child.cmdline())
                name = cmdline.split(" ")[0] or child.name()
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                continue
            pss += self._pss(child)
            if name.startswith("ray::") or "default_worker.py" in cmdline:
                workers += rss
                biggest = max(biggest, rss)
                n += 1
            else:
                system += rss
        return MemorySample(time.time(), driver / MB, system / MB, workers / MB, biggest / MB, n, pss / MB)

    def _pss(self, proc) -> int:
        try:
            return int(getattr(proc.memory_full_info(), "pss", 0))
        except (self.psutil.NoSuchProcess, self.psutil.AccessDenied, self.psutil.ZombieProcess):
            return 0

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.sample())
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def window(self, t0: float, t1: float) -> list[MemorySample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


@dataclass
class SoakResult:
    n_inputs: int
    seconds: float
    frames: int
    ok: int
    rejected: int
    reasons: dict
    peak_total_mb: float
    peak_pss_mb: float
    peak_driver_mb: float
    peak_workers_mb: float
    peak_single_worker_mb: float
    max_workers: int
    end_total_mb: float
    samples: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def inputs_per_s(self) -> float:
        return self.n_inputs / self.seconds

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds


def replicate_inputs(sources: list[Path], n: int, folder: Path) -> list[Path]:
    """``n`` symlinks with distinct names, cycling through ``sources``."""
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for i in range(n):
        src = sources[i % len(sources)]
        link = folder / f"soak_{i:04d}_{src.stem}{src.suffix}"
        os.symlink(src.resolve(), link)
        links.append(link)
    return links


def soak_once(n: int, sources: list[Path], config: str, workers: int, sampler: RssSampler, tmp: Path) -> SoakResult:
    tmp.mkdir(parents=True, exist_ok=True)
    inputs = tmp / f"inputs_{n}"
    replicate_inputs(sources, n, inputs)
    out = tmp / f"run_{n}"
    t0 = time.time()
    summary = run_curation(config, inputs, out, executor="ray", workers=workers, progress=False)
    t1 = time.time()
    time.sleep(2 * sampler.interval)  # one more sample after the run: what stays resident
    rows = shards.read_rows(out, "clips") + shards.read_rows(out, "rejects")
    # frames of each input (probe's decoded count), counted once per input even if split into clips
    per_source: dict[str, int] = {}
    for r in rows:
        if r.get("num_frames"):
            per_source[r["source_path"]] = int(r["num_frames"])
    win = sampler.window(t0, t1) or [sampler.sample()]
    after = sampler.samples[-1] if sampler.samples else sampler.sample()
    res = SoakResult(
        n_inputs=n, seconds=t1 - t0, frames=sum(per_source.values()),
        ok=summary.totals.get("ok", 0),
        rejected=summary.totals.get("filtered", 0) + summary.totals.get("failed", 0),
        reasons=dict(summary.reasons),
        peak_total_mb=max(s.total_mb for s in win), peak_pss_mb=max(s.pss_mb for s in win),
        peak_driver_mb=max(s.driver_mb for s in win),
        peak_workers_mb=max(s.workers_mb for s in win), peak_single_worker_mb=max(s.max_worker_mb for s in win),
        max_workers=max(s.n_workers for s in win), end_total_mb=after.total_mb, samples=len(win),
    )
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(inputs, ignore_errors=True)
    return res


def print_table(results: list[SoakResult], config: str, workers: int, tolerance: float) -> bool:
    print(f"\nsoak: config={config}, executor=ray (local, {workers} CPUs), RSS and PSS sampled every 0.5 s "
          "(driver + Ray GCS/raylet + workers)")
    head = (f"{'N':>5s} {'seconds':>8s} {'inputs/s':>9s} {'frames/s':>9s} {'ok':>5s} {'rej':>4s} "
            f"{'peak MB':>8s} {'PSS MB':>7s} {'driver':>7s} {'workers':>8s} {'1 worker':>9s} {'#w':>3s} {'after MB':>9s}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.n_inputs:5d} {r.seconds:8.1f} {r.inputs_per_s:9.3f} {r.frames_per_s:9.1f} {r.ok:5d} "
              f"{r.rejected:4d} {r.peak_total_mb:8.0f} {r.peak_pss_mb:7.0f} {r.peak_driver_mb:7.0f} {r.peak_workers_mb:8.0f} "
              f"{r.peak_single_worker_mb:9.0f} {r.max_workers:3d} {r.end_total_mb:9.0f}")
    flat = True
    if len(results) >= 2:
        first, last = results[0], results[-1]
        growth = last.peak_total_mb / max(1e-6, first.peak_total_mb) - 1.0
        pss_growth = last.peak_pss_mb / max(1e-6, first.peak_pss_mb) - 1.0
        worker_growth = last.peak_single_worker_mb / max(1e-6, first.peak_single_worker_mb) - 1.0
        flat = growth <= tolerance
        print(f"peak RSS N={last.n_inputs} vs N={first.n_inputs}: {growth:+.1%} total (PSS {pss_growth:+.1%}), "
              f"{worker_growth:+.1%} "
              f"largest worker -> memory {'flat' if flat else 'GROWS'} (tolerance {tolerance:.0%}); "
              f"throughput {last.inputs_per_s / first.inputs_per_s:.2f}x of N={first.n_inputs}")
    return flat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="10,50,200", help="comma-separated input counts (default 10,50,200)")
    ap.add_argument("--config", default="video_only", help="pipeline config name or YAML path (default video_only)")
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray runtime (default 2)")
    ap.add_argument("--data", default=None, help="data root with talking/*.mp4 (default: ../shared/data)")
    ap.add_argument("--flat-tolerance", type=float, default=0.25, help="allowed peak-RSS growth (default 0.25)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="inputs of an unreported first run that starts Ray's workers (default 2; 0: none)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.n.split(",") if x.strip()]
    root = resolve_data_root(args.data).absolute()
    sources = sorted((root / "talking").glob("*.mp4"))
    if not sources:
        print(f"{root / 'talking'}: no *.mp4 clips to replicate; pass --data", file=sys.stderr)
        return 2

    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    sampler = RssSampler(0.5)
    sampler.start()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="anytalker-soak-"))
    try:
        print(f"sources: {', '.join(s.name for s in sources)}; sizes {sizes}", flush=True)
        if args.warmup > 0:
            # Ray Data starts worker processes and actor pools on the first dataset: keep that
            # one-off cost out of the first size's throughput
            w = soak_once(args.warmup, sources, args.config, args.workers, sampler, tmp / "warmup")
            print(f"warm-up N={args.warmup}: {w.seconds:.1f} s (not in the table)", flush=True)
        for n in sizes:
            r = soak_once(n, sources, args.config, args.workers, sampler, tmp)
            results.append(r)
            print(f"N={n}: {r.seconds:.1f} s, {r.inputs_per_s:.3f} inputs/s, {r.frames_per_s:.1f} frames/s, "
                  f"peak {r.peak_total_mb:.0f} MB, reasons {r.reasons}", flush=True)
    finally:
        sampler.stop()
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    flat = print_table(results, args.config, args.workers, args.flat_tolerance)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": args.config, "workers": args.workers, "memory_flat": flat,
            "results": [{**asdict(r), "inputs_per_s": r.inputs_per_s, "frames_per_s": r.frames_per_s} for r in results],
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
