"""AFCA properties: locality of each identity's output, order invariance, audio swapping and
the temporal audio window."""

import pytest
import torch

from model.afca import AFCA
from model.config import latent_frames

FRAMES, A, NF, D, GH, GW = 9, 4, 3, 32, 4, 6  # 3 latent frames, 4x6 token grid


def _setup(seed=0, n_id=2):
    g = torch.Generator().manual_seed(seed)
    lat = latent_frames(FRAMES)
    s = GH * GW
    x = torch.randn(1, lat * s, D, generator=g)
    faces = torch.randn(1, n_id, NF, D, generator=g)
    audio = torch.randn(1, n_id, FRAMES * A, D, generator=g)
    grid = torch.zeros(1, n_id, GH, GW)
    grid[0, 0, 1:3, 0:2] = 1  # identity 0 on the left
    if n_id > 1:
        grid[0, 1, 1:4, 3:6] = 1  # identity 1 on the right
    if n_id > 2:
        grid[0, 2, 0, 2:4] = 1
    masks = grid.flatten(2).repeat(1, 1, lat)
    torch.manual_seed(seed)
    block = AFCA(D, 4).eval()
    return block, x, faces, audio, masks, s


def _run(block, x, faces, audio, masks, s):
    with torch.no_grad():
        return block(x, faces, audio, masks, FRAMES, s)


@pytest.mark.parametrize("ident", [0, 1])
def test_perturbing_one_audio_changes_only_that_face_region(ident):
    block, x, faces, audio, masks, s = _setup()
    base = _run(block, x, faces, audio, masks, s)
    audio2 = audio.clone()
    audio2[0, ident] += torch.randn_like(audio2[0, ident])
    diff = (_run(block, x, faces, audio2, masks, s) - base).abs().sum(-1)[0]  # per token
    inside = masks[0, ident] > 0
    assert diff[inside].min() > 1e-4  # every token of the face region reacts
    assert diff[~inside].max() == 0  # nothing outside it changes


def test_output_is_zero_outside_all_masks_and_sums_identities():
    block, x, faces, audio, masks, s = _setup()
    both = _run(block, x, faces, audio, masks, s)
    only0 = _run(block, x, faces[:, :1], audio[:, :1], masks[:, :1], s)
    only1 = _run(block, x, faces[:, 1:], audio[:, 1:], masks[:, 1:], s)
    torch.testing.assert_close(both, only0 + only1)
    assert both[0, masks[0].sum(0) == 0].abs().max() == 0


@pytest.mark.parametrize("n_id", [2, 3])
def test_permuting_identities_gives_the_same_output(n_id):
    block, x, faces, audio, masks, s = _setup(1, n_id)
    perm = torch.arange(n_id).flip(0)
    torch.testing.assert_close(_run(block, x, faces, audio, masks, s),
                               _run(block, x, faces[:, perm], audio[:, perm], masks[:, perm], s))


def test_swapping_audio_between_faces_swaps_the_effect():
    block, x, faces, audio, masks, s = _setup(2)
    faces[:, 1] = faces[:, 0]  # same face, so only the audio distinguishes the identities
    x = x.view(1, 3, GH, GW, D)
    x[..., 3:6, :] = x[..., 0:3, :]  # left and right halves of the video are identical
    x = x.reshape(1, -1, D)
    grid = torch.zeros(1, 2, GH, GW)
    grid[0, 0, :, 0:3] = 1
    grid[0, 1, :, 3:6] = 1
    masks = grid.flatten(2).repeat(1, 1, 3)
    out = _run(block, x, faces, audio, masks, s).view(3, GH, GW, D)
    swapped = _run(block, x, faces, audio.flip(1), masks, s).view(3, GH, GW, D)
    torch.testing.assert_close(swapped[:, :, 0:3], out[:, :, 3:6])
    torch.testing.assert_close(swapped[:, :, 3:6], out[:, :, 0:3])
    assert (out[:, :, 0:3] - out[:, :, 3:6]).abs().max() > 1e-3  # the two audios differ in effect


def test_audio_of_one_frame_reaches_only_its_latent_frame_and_the_first():
    block, x, faces, audio, masks, s = _setup(3, 1)
    masks = torch.ones_like(masks)
    base = _run(block, x, faces, audio, masks, s)
    for frame, latent in [(1, 1), (4, 1), (5, 2), (8, 2)]:
        a2 = audio.clone()
        a2[0, 0, frame * A:(frame + 1) * A] += 3.0
        diff = (_run(block, x, faces, a2, masks, s) - base).abs().sum(-1)[0].view(3, s).sum(-1)
        changed = sorted(torch.nonzero(diff > 1e-6).flatten().tolist())
        assert changed == [0, latent], (frame, changed)
