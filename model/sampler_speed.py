"""CPU seconds of the sampler per generated video second, for a checkpoint and the model code of
a given checkout, on the geometry of ``2p-0.png`` at output height 96 (two identities).

    python -m model.sampler_speed --checkpoint CKPT [--code DIR] [--threads 1]

``--code`` puts another checkout's ``model`` package first (e.g. ``git archive c4ff925 | tar -x
-C /tmp/old``, with a checkpoint trained by that code), so the code before and after a change is
timed the same way. CPU time (``time.process_time``), not wall time: on a shared machine wall
time mostly measures the other jobs. Old full-frame code: the whole 168 x 96 frame with both
identities; face-centred code: the two 96 x 96 face crops as a batch.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time

from model.code_checkout import use_model_package_from


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--code", help="checkout whose model/ package is timed (default: this one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    if args.code:
        use_model_package_from(args.code)
    import torch

    from model.flow import sample
    from model.generate import load_model

    torch.set_num_threads(args.threads)
    model, cfg, frontend, _ = load_model(args.checkpoint)
    v, smp = cfg["video"], cfg["sample"]
    T, steps, cfg_scale = int(v["num_frames"]), int(smp["steps"]), float(smp["cfg"])
    face_centred = "context" in inspect.signature(sample).parameters
    b, h, w, n_id = (2, int(v["height"]), int(v["width"]), 1) if face_centred else (1, 96, 168, 2)
    p = int(v["patch"])
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    faces = torch.rand(b, n_id, 3, 32, 32, generator=g) * 2 - 1
    audio = torch.randn(b, n_id, T, int(cfg["model"]["audio_window"]), frontend.feature_dim, generator=g)
    masks = torch.ones(b, n_id, h // p, w // p)
    motion = getattr(model, "motion", None) is not None and getattr(model, "warp_context", False)

    motion_reps = motion and hasattr(model.motion, "coefficients")  # round 6+: the head once per clip

    def clip_contexts(n_chunks: int) -> list:
        """Per chunk, the sampler's context. With the motion head: the clip's lip motion in one
        pass of the head (as ``generate`` does since round 6; before, the head ran per chunk),
        then the reference warped to each chunk's lips."""
        if not motion:
            return [ref] * n_chunks
        from model.flow import warped_context
        from model.motion import destination

        ang = torch.linspace(0, 6.28, model.motion.num_points)
        ref_lips = torch.stack([w / 2 + w / 8 * ang.cos(), h * 0.7 + h / 30 * ang.sin()], -1)
        ref_lips = ref_lips.expand(b, 1, -1, -1)
        with torch.no_grad():
            if motion_reps:
                from model.motion import centre_features

                n_total = n_chunks * (T - 1) + 1
                clip_audio = torch.randn(b, n_id, n_total, audio.shape[3], audio.shape[4], generator=g)
                deform = model.motion(model.encode_faces(faces), centre_features(clip_audio), ref_lips)
                dsts = [destination(ref_lips, deform[:, :, c * (T - 1):c * (T - 1) + T]) for c in range(n_chunks)]
            else:  # round 5: the DiT's audio tokens in, once per chunk
                dsts = []
                for _ in range(n_chunks):
                    ft, at = model.encode_conditions(ref, faces, audio)
                    dsts.append(destination(ref_lips, model.motion(ft, at, ref_lips, T, float(h))))
            return [warped_context(model, ref, ref, ref_lips, d, T) for d in dsts]

    def clip(n_chunks: int, n_steps: int) -> None:
        for context in clip_contexts(n_chunks):
            sample(model, ref, faces, audio, masks, T, steps=n_steps, cfg_scale=cfg_scale,
                   **({"context": context} if face_centred else {}))

    clip(1, 1)  # warm-up
    t0, w0 = time.process_time(), time.perf_counter()
    clip(args.reps, steps)  # one clip of ``reps`` chunks: the head once, the sampler per chunk
    cpu, wall = (time.process_time() - t0) / args.reps, (time.perf_counter() - w0) / args.reps
    per_s = cpu / ((T - 1) / float(v["fps"]))
    if not face_centred:
        print("(old full-frame code: timed without the motion head)")
    print(f"{'face-centred' if face_centred else 'full-frame'}{' + motion head + warp' if motion else ''}"
          f"{' (head once per clip)' if motion_reps else ''}: chunk {T} frames ({T - 1} new), {steps} steps, "
          f"cfg {cfg_scale}, batch {b} x {h} x {w}, {args.threads} thread(s): {cpu:.2f} CPU s per chunk, "
          f"{per_s:.2f} CPU s per generated second (wall {wall:.2f} s per chunk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
