"""Face encoders, audio front ends and checkpoints: offline defaults and real loading code,
tested with weights this test creates in the real file formats."""

import numpy as np
import pytest
import torch

from model.audio import (AudioBackendError, LogMelFrontend, SmallWav2Vec2, Wav2Vec2Frontend, build_frontend,
                         frame_windows)
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.config import load_config
from model.dit import AnyTalkerDiT, patchify
from model.face_encoder import ClipViT, FaceCNN, FaceEncoderError, build_face_encoder
from tests.model.conftest import MICRO


def test_frame_windows_are_edge_clamped():
    f = np.arange(6, dtype=np.float32)[:, None]
    w = frame_windows(f, 5)[..., 0]
    assert w.shape == (6, 5)
    assert w[0].tolist() == [0, 0, 0, 1, 2]
    assert w[3].tolist() == [1, 2, 3, 4, 5]
    assert w[5].tolist() == [3, 4, 5, 5, 5]


def test_logmel_frontend_follows_the_audio_in_time():
    fe = LogMelFrontend(40, 4)
    sr, fps = 16000, 24.0
    t = np.arange(sr) / sr
    audio = np.where(t < 0.5, 0.0, 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # silence then tone
    feats = fe(audio, 24, fps)
    assert feats.shape == (24, 160)
    energy = feats.reshape(24, 4, 40).mean((1, 2))
    assert energy[14:].mean() > energy[:10].mean() + 0.5


def test_wav2vec2_state_dict_loads_and_hf_dir_needs_transformers(tmp_path):
    torch.manual_seed(0)
    net = SmallWav2Vec2(hidden=32, layers=2, heads=4, conv_dim=32)
    path = tmp_path / "w2v.pt"
    torch.save({"config": net.config, "state_dict": net.state_dict()}, path)
    fe = build_frontend({"backend": "wav2vec2", "model_path": str(path)})
    assert fe.feature_dim == 3 * 32
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats = fe(audio, 24, 24.0)
    assert feats.shape == (24, 96) and np.isfinite(feats).all()
    with torch.no_grad():
        states = net(torch.from_numpy(audio))
    assert np.allclose(feats.reshape(24, 3, 32)[:, -1].mean(0), states[-1].mean(0).numpy(), atol=0.2)
    hf_dir = tmp_path / "wav2vec2-base"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text("{}")
    with pytest.raises(AudioBackendError, match="pip install transformers"):
        Wav2Vec2Frontend(str(hf_dir))
    bad = tmp_path / "bad.pt"
    torch.save({"config": {"hidden": 16, "layers": 1, "heads": 4, "conv_dim": 16}, "state_dict": net.state_dict()}, bad)
    with pytest.raises(AudioBackendError, match="does not fit"):
        Wav2Vec2Frontend(str(bad))


def test_face_cnn_tokens():
    enc = FaceCNN(64, 32)
    assert enc(torch.randn(3, 3, 32, 32)).shape == (3, 16, 64)


def test_clip_vit_loads_a_clip_style_state_dict(tmp_path):
    torch.manual_seed(1)
    ref = ClipViT(dim=8, image_size=32, patch=8, width=64, layers=2, heads=2)
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("out.")}
    state["proj"] = torch.randn(64, 32)  # CLIP's joint-embedding projection is present and ignored
    path = tmp_path / "clip_visual.pt"
    torch.save({f"visual.{k}": v for k, v in state.items()}, path)  # full-CLIP naming
    cfg = load_config("tiny", {"model": {"dim": 48, "face_size": 32},
                               "face_encoder": {"backend": "clip_vit", "weights": str(path), "heads": 2}})
    enc = build_face_encoder(cfg)
    assert enc.vit_config == {"image_size": 32, "patch": 8, "width": 64, "layers": 2, "heads": 2}
    assert cfg["face_encoder"]["vit"] == enc.vit_config
    torch.testing.assert_close(enc.conv1.weight, ref.conv1.weight)
    torch.testing.assert_close(enc.transformer.resblocks[1].mlp.c_fc.weight, ref.transformer.resblocks[1].mlp.c_fc.weight)
    assert not any(p.requires_grad for p in enc.vit_parameters()) and enc.out.weight.requires_grad
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 17, 48)
    broken = tmp_path / "broken.pt"
    torch.save({"conv1.weight": torch.randn(64, 3, 8, 8)}, broken)
    cfg["face_encoder"]["weights"] = str(broken)
    with pytest.raises(FaceEncoderError):
        build_face_encoder(cfg)


def test_checkpoint_round_trip(tmp_path):
    cfg = load_config("tiny", MICRO)
    torch.manual_seed(0)
    model = AnyTalkerDiT(cfg, 160)
    for p in model.parameters():  # zero-initialised heads would make every output equal
        p.data.add_(torch.randn_like(p) * 0.02)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    path = save_checkpoint(tmp_path / "ck.pt", model, opt, 7, cfg, {"backend": "logmel"})
    blob = load_checkpoint(path)
    assert blob["step"] == 7 and blob["config"] == cfg and blob["toolkit_version"]
    model2 = AnyTalkerDiT(blob["config"], 160)
    model2.load_state_dict(blob["model"])
    inputs = (patchify(torch.randn(1, 3, 9, 32, 32), 8), torch.tensor([0.5]), torch.randn(1, 3, 32, 32),
              torch.randn(1, 3, 32, 32))
    faces, audio = torch.randn(1, 2, 3, 16, 16), torch.randn(1, 2, 9, 5, 160)
    masks = torch.ones(1, 2, 4, 4)
    with torch.no_grad():
        outs = [m(*inputs, *m.encode_conditions(inputs[2], faces, audio), masks, 9) for m in (model, model2)]
    torch.testing.assert_close(outs[0], outs[1])
    assert outs[0].abs().max() > 0
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_audio_tokens_carry_their_frame_phase_inside_a_latent_frame():
    """A latent frame's AFCA sees its 4 frames' audio tokens at once: identical audio in every
    frame must still give tokens that tell the 4 frames apart (and repeat with the phase)."""
    from model.dit import AudioProjector

    proj = AudioProjector(feature_dim=6, window=3, tokens=2, dim=16)
    audio = torch.ones(1, 1, 9, 3, 6)  # the same window in all 9 frames
    tok = proj(audio).reshape(9, 2, 16)
    for f in range(1, 4):
        assert not torch.allclose(tok[f], tok[f + 1])  # phases 1..4 of one group differ
    assert torch.allclose(tok[1], tok[5]) and torch.allclose(tok[4], tok[8])  # same phase, next group
    assert not torch.allclose(tok[0], tok[4])  # frame 0 (alone in latent frame 0) has its own phase


def test_conv_refine_layout_round_trip_and_starts_as_identity():
    from model.dit import ConvRefine, frames_to_tokens, patchify, tokens_to_frames

    video = torch.randn(2, 3, 9, 16, 24)
    tokens = patchify(video, 8)
    frames = tokens_to_frames(tokens, 16, 24, 8).reshape(2, 3, 4, 3, 16, 24)  # (B, latent, slot, C, H, W)
    assert torch.equal(frames[:, 0, 3], video[:, :, 0]) and torch.equal(frames[:, 1, 0], video[:, :, 1])
    assert torch.equal(frames[:, 2, 3], video[:, :, 8])
    assert torch.equal(frames_to_tokens(tokens_to_frames(tokens, 16, 24, 8), 2, 8), tokens)
    refine = ConvRefine(4)
    assert torch.equal(refine(tokens, 16, 24, 8), tokens)  # zero-initialised last layer
    torch.nn.init.normal_(refine.net[2].weight)
    out = refine(tokens, 16, 24, 8)
    # the conv crosses patch borders: a change inside one patch reaches the neighbouring patch
    bumped = tokens.clone().reshape(2, 3, 2, 3, 3, 4, 8, 8)
    bumped[0, 1, 0, 0, :, 0, :, 7] += 5.0  # right column of patch (row 0, col 0), frame slot 0
    diff = (refine(bumped.reshape_as(tokens), 16, 24, 8) - out).reshape(2, 3, 2, 3, 3, 4, 8, 8)
    assert diff[0, 1, 0, 1].abs().sum() > 0  # patch (row 0, col 1) changed too


def test_audio_aux_loss_is_relative_to_a_still_mouth():
    """1.0 = no better than predicting no change; a readout that predicts the true change gets 0."""
    from model.config import load_config
    from model.dit import AnyTalkerDiT
    from model.flow import audio_aux_loss, mouth_change_target

    cfg = load_config("tiny", {"video": {"height": 16, "width": 16, "num_frames": 5, "patch": 8},
                               "model": {"dim": 16, "depth": 1, "heads": 2, "face_size": 16, "audio_tokens": 1}})
    model = AnyTalkerDiT(cfg, 4)
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 5, 16, 16, generator=g)
    target = mouth_change_target(video, 8)
    assert target.shape == (2, 5, 4) and torch.all(target[:, 0] == 0)
    assert torch.allclose(target[0, 2, 0], video[0, :, 2, :8, :8].mean() - video[0, :, 0, :8, :8].mean())
    batch = {"video": video, "mouth_masks": torch.tensor([[[0.0, 0.0], [1.0, 1.0]]] * 2)}
    torch.nn.init.zeros_(model.mouth_readout.weight)
    torch.nn.init.zeros_(model.mouth_readout.bias)
    audio_tokens = torch.randn(2, 1, 5, 16, generator=g)
    assert float(audio_aux_loss(model, batch, audio_tokens)) == pytest.approx(1.0)
    # a readout that reproduces the target exactly: the loss is 0
    model.mouth_from_audio = lambda at: target
    assert float(audio_aux_loss(model, batch, audio_tokens)) == pytest.approx(0.0, abs=1e-9)
