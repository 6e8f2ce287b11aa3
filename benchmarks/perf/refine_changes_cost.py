"""CPU cost of the v6 change-point refinement: ``curation.audio.diarize`` from the waveform
(VAD, every d-vector pass, labelling; nothing cached) with ``refine=False`` and ``refine=True``,
alternated in one process, on the shared two-speaker recordings. Prints CPU seconds per audio
second (median of the repeats) and the ratio on / off.

    .venv/bin/python -m benchmarks.perf.refine_changes_cost [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

FILES = ("audio/sample.wav", "anytalker_benchmark/interact_11.mp4")


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from curation import audio
    from curation.media import load_audio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_root(), help="shared data root")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {"backend": audio.diarization_backend_name(), "load_average": os.getloadavg()[0], "files": {}}
    for rel in FILES:
        path = args.data / rel
        if not path.is_file():
            out["files"][rel] = {"skipped": f"{path}: missing"}
            continue
        wav = load_audio(path)
        audio.diarize(wav[: audio.SR * 3], num_speakers=2)  # model loads and imports, not timed
        cost = {False: [], True: []}
        for _ in range(args.repeats):
            for on in (False, True):
                t0 = time.process_time()
                audio.diarize(wav, num_speakers=2, refine=on)
                cost[on].append(time.process_time() - t0)
        secs = len(wav) / audio.SR
        off, on = float(np.median(cost[False])) / secs, float(np.median(cost[True])) / secs
        out["files"][rel] = {"audio_s": round(secs, 2), "cpu_s_per_audio_s_off": round(off, 4),
                             "cpu_s_per_audio_s_on": round(on, 4), "ratio_on_off": round(on / off, 3)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
