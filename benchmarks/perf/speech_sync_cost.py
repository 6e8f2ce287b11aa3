"""Cost of the speech and sync primitives next to plain decoding, in one run.

Measures on one real talking clip (default: the shared sadtalker clip, 8 s, 512x512):

* audio: decode (ffmpeg -> 16 kHz mono), silero VAD, default diarization (d-vectors +
  clustering, VAD given) -- in ms per second of audio;
* video: decode at 25 fps (decord), landmark sync curve (given the per-frame lip signal; the
  face mesh that makes it belongs to the faces stage and is not counted), SyncNet with random
  weights (joonson's network, real cost: crops from the video + lip/audio towers + curve) --
  in ms per analysed frame.

Each ratio is the cost over the matching decode cost. Single-threaded torch (the pipeline
runs one thread per worker).

    .venv/bin/python -m benchmarks.perf.speech_sync_cost [--video PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

DEFAULT_DATA = default_data_root()
DEFAULT_VIDEO = DEFAULT_DATA / "talking" / "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"


def _best_of(fn, repeat: int) -> float:
    """Fastest of ``repeat`` runs in seconds (the machine is shared: the minimum is the cost)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(video: Path, repeat: int = 3, syncnet_frames: int = 50) -> dict:
    import torch

    from curation import audio as speech
    from curation import sync
    from curation.media import VideoReader, load_audio, probe, sample_indices

    torch.set_num_threads(1)
    info = probe(video)
    wav = load_audio(video)
    audio_s = len(wav) / 16000
    idx = sample_indices(0, info.num_frames, info.fps, 25.0)
    n = len(idx)

    # warm up: models load once per worker in the pipeline too
    vad = speech.vad_segments(wav)
    speech.diarize(wav[: 16000 * 3], speech=[(0.0, 3.0)])

    res: dict[str, dict] = {}
    res["audio_decode"] = {"s": _best_of(lambda: load_audio(video), repeat), "per": audio_s, "unit": "ms/audio-s"}
    res["vad"] = {"s": _best_of(lambda: speech.vad_segments(wav), repeat), "per": audio_s, "unit": "ms/audio-s"}
    res["diarization"] = {"s": _best_of(lambda: speech.diarize(wav, speech=vad), repeat), "per": audio_s,
                          "unit": "ms/audio-s"}

    def decode_video():
        VideoReader(video).get(idx)

    res["video_decode_25fps"] = {"s": _best_of(decode_video, repeat), "per": n, "unit": "ms/frame"}
    rng = np.random.default_rng(0)
    mouth = np.clip(np.convolve(rng.random(n), np.hanning(5), mode="same") - 1.0, 0, None)
    be = sync.get_sync_backend("landmark")
    res["landmark_sync"] = {"s": _best_of(lambda: sync.sync_score(be, sync.SyncInput(audio=wav, mouth_open=mouth)),
                                          repeat), "per": n, "unit": "ms/frame"}

    from syncnet_python.SyncNetModel import S

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "syncnet_random.model"
        torch.manual_seed(0)
        torch.save(S(num_layers_in_fc_layers=1024).state_dict(), weights)
        sn = sync.get_sync_backend("syncnet", weights=str(weights))
        m = min(n, syncnet_frames)
        w, h = info.width, info.height
        side = 0.4 * min(w, h)
        box = [w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2]

        def syncnet_run():
            crops = sync.face_crops_for_syncnet(video, idx[:m], [box] * m)
            sync.sync_score(sn, sync.SyncInput(audio=wav[: m * 640], face_crops=crops))

        res["syncnet_random_weights"] = {"s": _best_of(syncnet_run, 1), "per": m, "unit": "ms/frame"}

    for v in res.values():
        v["ms_per_unit"] = round(1000 * v["s"] / v["per"], 3)
    a0 = res["audio_decode"]["ms_per_unit"]
    v0 = res["video_decode_25fps"]["ms_per_unit"]
    for k, v in res.items():
        v["x_decode"] = round(v["ms_per_unit"] / (a0 if v["unit"] == "ms/audio-s" else v0), 2)
    return {
        "video": str(video), "audio_s": round(audio_s, 3), "frames_25fps": n,
        "backends": {"vad": speech.vad_backend_name(), "diarization": speech.diarization_backend_name(),
                     "landmark": f"{be.name} {be.version}", "syncnet": "syncnet (random weights)"},
        "torch_threads": torch.get_num_threads(), "results": res,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: not found; pass --video or set ANYTALKER_DATA")
    out = run(args.video, args.repeat)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['video']}: {out['audio_s']} s audio, {out['frames_25fps']} frames at 25 fps, "
          f"torch threads {out['torch_threads']}")
    print(f"{'step':26s} {'cost':>12s} {'unit':>12s} {'x decode':>9s}")
    for k, v in out["results"].items():
        print(f"{k:26s} {v['ms_per_unit']:12.3f} {v['unit']:>12s} {v['x_decode']:9.2f}")
    print("backends: " + "; ".join(f"{k}={v}" for k, v in out["backends"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
