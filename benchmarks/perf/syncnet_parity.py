"""Sync-C with the SyncNet backend: this toolkit against syncnet_python's own pipeline, same
network and same weights file, same clip. Prints times (and their ratio) and the numbers.

    .venv/bin/python benchmarks/perf/syncnet_parity.py [--video V --audio A] [--syncnet-weights syncnet_v2.model]
        [--s3fd-weights sfd_face.pth]

joonson's real weights cannot be downloaded here: without --syncnet-weights / --s3fd-weights the
script saves random-init SyncNet (``SyncNetModel.S``) and S3FD (``S3FDNet``) state dicts in the
real formats and both sides load the same files. With random weights the *numbers* are not
meaningful Sync-C values, but they must still agree between the two implementations on the
same crops, and the times are real.

Three measurements:
1. end to end: ``get_metric("sync_c", backend="syncnet")`` (mediapipe tracks + joonson crops +
   SyncNet) vs ``SyncNetPipeline.inference`` (S3FD + scene detection + tracks + crops + SyncNet);
2. network stage on identical crops: ``curation.sync.sync_score`` vs joonson's
   ``SyncNetInstance.evaluate`` reading the same crops (JPEG q=100) and audio (16-bit WAV).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

SHARED = default_data_root()


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=SHARED / "talking" / "syncnet_example_video.avi")
    p.add_argument("--audio", type=Path, default=SHARED / "talking" / "syncnet_example_speech.wav")
    p.add_argument("--syncnet-weights", type=Path)
    p.add_argument("--s3fd-weights", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from syncnet_python.detectors.s3fd.nets import S3FDNet
    from syncnet_python.SyncNetModel import S

    from curation.media import load_audio, probe, write_wav
    from curation.sync import SyncInput, face_crops_for_syncnet, get_sync_backend, sync_score
    from metrics import Sample, _analysis, get_metric

    for f in (args.video, args.audio):
        if not f.is_file():
            print(f"{f}: not found; pass --video / --audio or set ANYTALKER_DATA", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="syncnet_parity_"))
    weights_note = []
    if args.syncnet_weights is None:
        torch.manual_seed(0)
        args.syncnet_weights = work / "syncnet_v2.model"
        torch.save(S(num_layers_in_fc_layers=1024).state_dict(), args.syncnet_weights)
        weights_note.append("SyncNet random-init (seed 0)")
    if args.s3fd_weights is None:
        torch.manual_seed(0)
        args.s3fd_weights = work / "sfd_face.pth"
        torch.save(S3FDNet(device="cpu").state_dict(), args.s3fd_weights)
        weights_note.append("S3FD random-init (seed 0)")
    duration = probe(args.video).duration_s
    print(f"clip: {args.video.name} ({duration:.2f} s) + {args.audio.name}; torch threads {args.threads}")
    print(f"weights: {args.syncnet_weights} / {args.s3fd_weights}"
          + (f" ({'; '.join(weights_note)}: numbers are not real Sync-C values)" if weights_note else ""))

    # 1a. ours, end to end
    _analysis.clear()
    metric = get_metric("sync_c", backend="syncnet", weights=str(args.syncnet_weights))
    res, ours_wall, ours_cpu = _timed(lambda: metric.evaluate([Sample("clip", str(args.video), mixed_audio_path=str(args.audio))]))
    tracks = res.items[0].components.get("tracks", []) if res.n_scored else []
    print(f"\n[1] end to end\n  anytalker sync_c ({res.backend} {res.backend_version}): "
          f"{ours_wall:.2f} s wall, {ours_cpu:.2f} s cpu; value {res.value:.4f}; tracks "
          f"{[(t['offset'], t['conf'], t['min_dist']) for t in tracks]}"
          + ("" if res.n_scored else f"; failed: {res.failures} {res.items[0].components}"))

    # 1b. syncnet_python's own pipeline
    theirs_wall = None
    try:
        from syncnet_python.syncnet_pipeline import SyncNetPipeline

        pipe = SyncNetPipeline(device="cpu", s3fd_weights=str(args.s3fd_weights),
                               syncnet_weights=str(args.syncnet_weights))
        out, theirs_wall, theirs_cpu = _timed(lambda: pipe.inference(str(args.video), str(args.audio),
                                                                     cache_dir=str(work / "pipeline")))
        offsets, confs, dists = out[0], out[1], out[2]
        print(f"  syncnet_python SyncNetPipeline.inference: {theirs_wall:.2f} s wall, {theirs_cpu:.2f} s cpu; "
              f"offsets {offsets} confs {confs} min_dists {dists}")
        if not confs:
            print("  note: the pipeline found no face track (random-init S3FD detects nothing above its "
                  "0.9 threshold), so its time covers decoding + detection + scene detection only")
        print(f"  ratio anytalker / syncnet_python (wall): {ours_wall / theirs_wall:.2f}")
    except Exception as e:  # noqa: BLE001 - report why their pipeline cannot run here
        print(f"  syncnet_python SyncNetPipeline cannot run here: {type(e).__name__}: {e}")
        traceback.print_exc(limit=3)

    # 2. network stage on identical crops
    analysis = _analysis.analyze(args.video, fps=25.0, with_landmarks=False)
    if not analysis.tracks:
        print("\n[2] skipped: no face track in the clip")
        return 0
    track = analysis.tracks[0]
    crops = face_crops_for_syncnet(args.video, analysis.frame_indices, track.boxes)
    audio = load_audio(args.audio)
    backend = get_sync_backend("syncnet", weights=str(args.syncnet_weights))
    ours, t_ours, c_ours = _timed(lambda: sync_score(backend, SyncInput(audio=audio, face_crops=crops)))

    crop_dir = work / "crops"
    crop_dir.mkdir()
    for i, c in enumerate(crops):
        cv2.imwrite(str(crop_dir / f"{i + 1:06d}.jpg"), c[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    write_wav(crop_dir / "audio.wav", audio[: int(len(crops) * 640)])
    from syncnet_python.SyncNetInstance import SyncNetInstance

    net = S()
    net.load_state_dict(torch.load(str(args.syncnet_weights), map_location="cpu"))
    inst = SyncNetInstance(net=net.eval(), device="cpu")

    class Opt:
        tmp_dir = str(crop_dir)
        batch_size = 20
        vshift = 15

    theirs, t_theirs, c_theirs = _timed(lambda: inst.evaluate(opt=Opt()))
    t_off, t_conf, t_dist = (float(np.asarray(x).ravel()[0]) for x in theirs[:3])
    print(f"\n[2] SyncNet stage on the same {len(crops)} crops (track 0)")
    print(f"  anytalker curation.sync.sync_score:  {t_ours:.2f} s wall, {c_ours:.2f} s cpu; "
          f"offset {ours.offset} conf {ours.conf:.4f} min_dist {ours.min_dist:.4f}")
    print(f"  syncnet_python SyncNetInstance.evaluate: {t_theirs:.2f} s wall, {c_theirs:.2f} s cpu; "
          f"offset {int(t_off)} conf {t_conf:.4f} min_dist {t_dist:.4f}")
    print(f"  ratio anytalker / syncnet_python (wall): {t_ours / t_theirs:.2f}; "
          f"|conf diff| {abs(ours.conf - t_conf):.4f}, |min_dist diff| {abs(ours.min_dist - t_dist):.4f}, "
          f"same offset: {ours.offset == int(t_off)} (crops pass through JPEG q=100 on their side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
