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
