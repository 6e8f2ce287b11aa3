"""Identity similarity (dlib offline backend): a real clip keeps its identity, a splice does not."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import Sample, get_metric
from tests.conftest import shared_file

SIZE = 256
N = 50  # 2 s at 25 fps per part


def _frames(rel: str, n: int, start: int = 0) -> np.ndarray:
    import cv2

    from curation.media import read_frames

    frames = read_frames(shared_file(rel), start, start + n)
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


def test_real_clip_scores_higher_than_a_two_person_splice(tmp_path):
    from curation.media import write_video

    a = _frames("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", 2 * N)
    b = _frames("talking/infinitetalk_ref_video.mp4", N)
    real, spliced = tmp_path / "real.mp4", tmp_path / "spliced.mp4"
    write_video(real, a, 25.0)
    write_video(spliced, np.concatenate([a[:N], b]), 25.0)

    metric = get_metric("identity")
    r = metric.evaluate([Sample("real", str(real)), Sample("spliced", str(spliced))])
    assert r.backend == "dlib_resnet_v1" and "dlib" in r.backend_version
    assert r.n_scored == 2, r.failures
    real_v, spliced_v = (it.value for it in r.items)
    assert real_v > 0.9, real_v  # same person throughout
    assert spliced_v < real_v - 0.1, (real_v, spliced_v)
    # the second half of the splice is another person: its frames are far from the first frame
    assert r.items[1].components["persons"][0]["min"] < 0.8
    assert r.items[1].components["n_persons"] == 1
    assert r.params["frame_step"] == 5


def test_arcface_backend_needs_a_model_file():
    from kernel.errors import UserError

    with pytest.raises(UserError, match="arcface"):
        get_metric("identity", backend="arcface")


def test_arcface_backend_scores_with_a_user_supplied_state_dict(tmp_path):
    """arcface_torch iresnet18 state dict, random init (hub weights cannot be downloaded)."""
    import torch

    from curation.identity import build_iresnet
    from curation.media import write_video

    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(build_iresnet(layers=(2, 2, 2, 2)).state_dict(), weights)
    clip = tmp_path / "clip.mp4"
    write_video(clip, _frames("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", 20), 25.0)
    r = get_metric("identity", backend="arcface", weights=str(weights)).evaluate([Sample("clip", str(clip))])
    assert r.n_scored == 1, r.failures
    assert r.backend == "arcface" and "backbone.pth" in r.backend_version
    assert -1.0 <= r.value <= 1.0
