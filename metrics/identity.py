"""Identity similarity: does each person keep their identity through the video?

Per person: cosine similarity between the face embedding of the first frame in which the
person is seen and the embedding of every later sampled frame (every ``frame_step``-th analysed
frame), averaged. The video score is the mean over persons.

Persons are position slots (left -> right), not tracker identities: at each sampled frame the
detected faces are sorted by box centre, and a frame is used only when exactly N faces are
seen. A face that changes identity in place (a splice, an identity drift) therefore stays in
the same slot and is scored against the first frame's face, instead of starting a new track.
N = the number of persons in the speaking intervals if given, else the most common number of
faces per analysed frame.

Backends (``curation.identity``): ``dlib`` (offline default, 128-d) and ``arcface`` (user-
supplied InsightFace ONNX / arcface_torch .pth via ``weights``).
"""

from __future__ import annotations

import numpy as np

from metrics import _analysis
from metrics.base import ItemResult, Metric, MetricSkip, Sample


class IdentitySimilarity(Metric):
    name = "identity"
    version = "1"
    higher_is_better = True
    requires = ("video_path",)
    backends = ("dlib", "arcface")
    description = "Mean cosine similarity of each person's face embedding to their first frame's (per person, averaged)"
    params = {"backend": "dlib", "weights": None, "frame_step": 5, "fps": 25.0, "min_frames": 2}

    def __init__(self, **options):
        super().__init__(**options)
        from curation.identity import IdentityModelError, get_embedder

        from kernel.errors import UserError

        try:
            self.embedder = get_embedder(self.params["backend"], self.params["weights"])
        except IdentityModelError as e:
            raise UserError(str(e)) from None
        self.backend = self.embedder.name
        self.backend_version = self.embedder.version

    def score(self, sample: Sample) -> ItemResult:
        from curation.identity import cosine
        from curation.media import VideoReader

        fps = self.params["fps"]
        analysis = _analysis.analyze(sample.video_path, fps=None if fps is None else float(fps), with_landmarks=False)
        if not analysis.tracks:
            raise MetricSkip("no_face", "no face track in the video")
        T = len(analysis.frame_indices)
        boxes = np.stack([np.where(tr.detected[:, None], tr.boxes, np.nan) for tr in analysis.tracks], 1)  # (T, K, 4)
        seen = np.isfinite(boxes).all(-1)  # (T, K)
        counts = seen.sum(1)
        if sample.speaking_intervals:
            n = len(sample.speaking_intervals)
        else:
            nz = counts[counts > 0]
            n = int(np.bincount(nz).argmax()) if len(nz) else 0
        if n == 0:
            raise MetricSkip("no_face", "no frame with a detected face")

        step = max(1, int(self.params["frame_step"]))
        usable = [t for t in range(0, T, step) if counts[t] == n]
        if len(usable) < int(self.params["min_frames"]):
            raise MetricSkip("too_few_faces" if (counts < n).mean() > 0.5 else "too_many_faces",
                             f"{len(usable)} sampled frame(s) show exactly {n} face(s)")
        reader = VideoReader(sample.video_path)
        frames = reader.get(analysis.frame_indices[usable])
        sims: list[list[float]] = [[] for _ in range(n)]
        refs: list[np.ndarray | None] = [None] * n
        for img, t in zip(frames, usable):
            ks = np.flatnonzero(seen[t])
            order = ks[np.argsort((boxes[t, ks, 0] + boxes[t, ks, 2]) / 2)]
            for slot, k in enumerate(order):
                e = self.embedder.embed(img, boxes[t, k])
                if refs[slot] is None:
                    refs[slot] = e
                else:
                    sims[slot].append(cosine(refs[slot], e))
        persons = [{"index": i, "similarity": float(np.mean(s)) if s else None, "n_compared": len(s),
                    "min": float(np.min(s)) if s else None} for i, s in enumerate(sims)]
        scored = [p["similarity"] for p in persons if p["similarity"] is not None]
        if not scored:
            raise MetricSkip("too_short", "no later frame to compare with the first")
        return ItemResult(sample.item_id, True, float(np.mean(scored)), {
            "persons": persons, "n_persons": n, "frame_step": step, "analysis_fps": analysis.fps,
            "first_frame": int(analysis.frame_indices[usable[0]]),
            "face_backend": _analysis.backend_label(analysis),
        })
