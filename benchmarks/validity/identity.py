"""Identity embeddings on labelled photos: same-person pairs must beat different-person pairs.

    python -m benchmarks.validity identity --data DIR [--labels CSV] --json OUT

``--labels`` (default ``DIR/labels.csv``) has the columns ``file,person``; ``file`` is relative
to DIR. A photo showing several people lists them left to right separated by ``;``
(``two_people.jpg,barack_obama;joe_biden``); a photo whose detected face count differs from its
label count is skipped and listed. Every face is embedded with the identity backend (dlib by
default) and every pair of faces is compared by cosine similarity: ``same_min`` is the lowest
same-person similarity, ``diff_max`` the highest different-person one, ``separated`` is true
when ``same_min > diff_max`` (one threshold would sort every pair). Faces cut from the same
photo are compared like any other pair. For ``../shared/data`` the labels ship in this repo:
``--data ../shared/data/images/face_recognition --labels
benchmarks/validity/annotations/face_recognition_labels.csv``.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

CHECK = "identity"


def add_arguments(parser) -> None:
    parser.add_argument("--labels", type=Path, help="file,person CSV (default: DIR/labels.csv); files relative to DIR")
    parser.add_argument("--backend", default="dlib", choices=("dlib", "arcface"), help="identity embedder")
    parser.add_argument("--weights", help="weights file for the arcface backend")


def read_labels(path: Path) -> list[tuple[str, list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"file", "person"} <= set(rows[0]):
        raise ValueError(f"{path}: needs the columns file,person")
    return [(r["file"].strip(), [p.strip() for p in r["person"].split(";") if p.strip()]) for r in rows]


def run(args) -> dict:
    import numpy as np
    from PIL import Image

    from curation.faces import FaceDetector
    from curation.identity import cosine, get_embedder

    data = Path(args.data)
    labels_path = Path(args.labels) if args.labels else data / "labels.csv"
    if not labels_path.is_file():
        return {"error": f"{labels_path}: no labels file; pass --labels CSV (file,person)", "n_faces": 0}
    detector = FaceDetector()
    embedder = get_embedder(args.backend, args.weights)
    faces, skipped = [], []
    for rel, persons in read_labels(labels_path):
        path = data / rel
        if not path.is_file():
            skipped.append({"file": rel, "why": "not found"})
            continue
        with Image.open(path) as img:
            rgb = np.array(img.convert("RGB"))
        dets = sorted(detector.detect(rgb), key=lambda d: (d.box[0] + d.box[2]) / 2)
        if len(dets) != len(persons):
            skipped.append({"file": rel, "why": f"{len(dets)} faces detected, {len(persons)} labelled"})
            continue
        for d, person in zip(dets, persons):
            faces.append((rel, person, embedder.embed(rgb, np.asarray(d.box))))
    same, diff, pairs = [], [], []
    for (fa, pa, ea), (fb, pb, eb) in itertools.combinations(faces, 2):
        s = cosine(ea, eb)
        (same if pa == pb else diff).append(s)
        pairs.append({"a": f"{fa}:{pa}", "b": f"{fb}:{pb}", "same": pa == pb, "cosine": round(s, 4)})
    same_min = round(min(same), 4) if same else None
    diff_max = round(max(diff), 4) if diff else None
    return {"same_min": same_min, "diff_max": diff_max,
            "separated": bool(same and diff and same_min > diff_max),
            "n_faces": len(faces), "n_same_pairs": len(same), "n_diff_pairs": len(diff),
            "backend": f"{embedder.name} {embedder.version}", "labels": str(labels_path),
            "skipped": skipped, "pairs": pairs}
