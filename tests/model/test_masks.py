import numpy as np
import pytest
import torch

from model.config import ConfigError, latent_frames, load_config
from model.dit import patchify, unpatchify
from model.masks import audio_attention_mask, face_token_mask, mask_box


@pytest.mark.parametrize("n", [1, 2, 5, 20])
def test_audio_mask_shape_and_contents(n):
    frames, a, nf = 4 * n + 1, 32, 3
    m = audio_attention_mask(frames, a, nf)
    assert latent_frames(frames) == n + 1
    assert m.shape == (n + 1, nf + frames * a)
    assert m[:, :nf].all()  # face tokens visible to every latent frame
    assert m[0].all()  # the first latent frame sees all audio
    for l in range(1, n + 1):
        seen_frames = sorted({(k - nf) // a for k in torch.nonzero(m[l]).flatten().tolist() if k >= nf})
        assert seen_frames == list(range((l - 1) * 4 + 1, 4 * l + 1))
        assert int(m[l, nf:].sum()) == 4 * a
    # every video frame >= 1 is seen by exactly one latent frame >= 1
    per_frame = m[1:, nf:].reshape(n, frames, a).any(-1).sum(0)
    assert per_frame[0] == 0 and (per_frame[1:] == 1).all()


@pytest.mark.parametrize("frames", [0, 2, 16, 18])
def test_frame_counts_must_be_4n_plus_1(frames):
    with pytest.raises(ConfigError):
        audio_attention_mask(frames, 32)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_patchify_round_trip_any_n(n):
    frames = 4 * n + 1
    v = torch.randn(2, 3, frames, 16, 24)
    tok = patchify(v, 8)
    assert tok.shape == (2, (n + 1) * 2 * 3, 3 * 4 * 64)
    assert torch.equal(unpatchify(tok, frames, 16, 24, 8), v)
    # latent frame 0 holds only video frame 0
    first = tok[:, :6].reshape(2, 2, 3, 3, 4, 8, 8)
    assert torch.equal(first[..., 0, :, :], first[..., 3, :, :])


def test_face_mask_box_and_grid():
    box = [10, 20, 30, 60]  # 20 x 40 -> square side 40 around (20, 40)
    x1, y1, x2, y2 = mask_box(box)
    assert np.isclose(x2 - x1, 48) and np.isclose(y2 - y1, 44)
    assert np.isclose((x1 + x2) / 2, 20) and np.isclose((y1 + y2) / 2, 40)
    m = face_token_mask(box, 64, 96, 8)
    assert m.shape == (8, 12)
    ys, xs = np.nonzero(m)
    assert xs.min() * 8 < 20 < (xs.max() + 1) * 8 and ys.min() * 8 < 40 < (ys.max() + 1) * 8
    assert m[:, 6:].sum() == 0  # nothing right of the enlarged box (x2 = 44)
    # a face smaller than a token still marks its centre cell
    tiny = face_token_mask([50, 50, 51, 51], 64, 96, 8)
    assert tiny.sum() == 1 and tiny[6, 6] == 1


def test_configs_load():
    for name in ("tiny", "base"):
        cfg = load_config(name)
        assert (cfg["video"]["num_frames"] - 1) % 4 == 0
    with pytest.raises(ConfigError, match="4n\\+1"):
        load_config("tiny", {"video": {"num_frames": 16}})
    with pytest.raises(ConfigError, match="unknown config"):
        load_config("no_such_config")
