"""Identity embeddings: dlib default on real photos; ArcFace loaders with test-made weights."""

from __future__ import annotations

import numpy as np
import pytest

from curation.faces import FaceDetector
from curation.identity import (
    ArcFaceEmbedder, DlibEmbedder, IdentityModelError, align_face, build_iresnet, cosine,
    get_embedder, ARCFACE_TEMPLATE,
)
from tests.conftest import shared_file


def _load_rgb(rel: str) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(shared_file(rel)))
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def photo_faces(detector):
    out = {}
    for name in ("obama", "obama2", "biden"):
        rgb = _load_rgb(f"images/face_recognition/{name}.jpg")
        dets = detector.detect(rgb)
        assert len(dets) == 1, name
        out[name] = (rgb, dets[0].box)
    return out


def test_dlib_same_person_closer_than_different_person(photo_faces):
    emb = get_embedder("dlib")
    assert isinstance(emb, DlibEmbedder) and emb.dim == 128
    e = {k: emb.embed(rgb, box) for k, (rgb, box) in photo_faces.items()}
    for v in e.values():
        assert v.shape == (128,)
        assert abs(np.linalg.norm(v) - 1.0) < 1e-5
    same = cosine(e["obama"], e["obama2"])
    diff = cosine(e["obama"], e["biden"])
    assert same > diff + 0.05
    assert emb.version.startswith("dlib-")


def test_dlib_two_people_photo_matches_single_photos(detector, photo_faces):
    rgb = _load_rgb("images/face_recognition/two_people.jpg")
    dets = sorted(detector.detect(rgb), key=lambda d: d.box[0])
    assert len(dets) == 2
    emb = DlibEmbedder()
    left, right = (emb.embed(rgb, d.box) for d in dets)
    obama = emb.embed(*photo_faces["obama"])
    biden = emb.embed(*photo_faces["biden"])
    # SOURCES.md: Obama on the left, Biden on the right
    assert cosine(left, obama) > cosine(left, biden)
    assert cosine(right, biden) > cosine(right, obama)


def test_align_face_maps_points_onto_template():
    rgb = np.zeros((300, 300, 3), np.uint8)
    pts = ARCFACE_TEMPLATE * 2.0 + 20.0  # the template, scaled and shifted
    for x, y in pts.astype(int):
        rgb[y - 1:y + 2, x - 1:x + 2] = 255
    face = align_face(rgb, pts)
    assert face.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE.round().astype(int):
        assert face[y, x].max() > 100


def _random_iresnet18(path):
    import torch

    torch.manual_seed(0)
    net = build_iresnet(layers=(2, 2, 2, 2))
    net.eval()
    torch.save(net.state_dict(), path)
    return net


def test_arcface_torch_state_dict_loads_and_embeds(tmp_path, photo_faces):
    path = tmp_path / "backbone.pth"
    net = _random_iresnet18(path)
    emb = get_embedder("arcface", str(path))
    assert isinstance(emb, ArcFaceEmbedder)
    assert "iresnet18" in emb.version and emb.dim == 512
    rgb, box = photo_faces["obama"]
    v = emb.embed(rgb, box)
    assert v.shape == (512,) and abs(np.linalg.norm(v) - 1.0) < 1e-5
    # the loaded weights are the saved ones: same output as the original network
    import torch

    pts = emb.points5(rgb, box)
    blob = emb._blob(align_face(rgb, pts))
    with torch.inference_mode():
        ref = net(torch.from_numpy(blob)).numpy()[0]
    assert cosine(v, ref) > 0.9999


def test_arcface_onnx_loads_and_matches_torch(tmp_path, photo_faces):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    pth = tmp_path / "backbone.pth"
    net = _random_iresnet18(pth)
    onnx_path = tmp_path / "w600k_r18.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(onnx_path), input_names=["input.1"],
                      dynamo=False)
    onnx_emb = ArcFaceEmbedder(onnx_path)
    torch_emb = ArcFaceEmbedder(pth)
    assert onnx_emb.version.startswith("onnx:") and onnx_emb.dim == 512
    rgb, box = photo_faces["biden"]
    pts = torch_emb.points5(rgb, box)
    a, b = onnx_emb.embed(rgb, box, pts), torch_emb.embed(rgb, box, pts)
    assert a.shape == (512,) and abs(np.linalg.norm(a) - 1.0) < 1e-5
    assert cosine(a, b) > 0.999


def test_arcface_rejects_wrong_files(tmp_path):
    import torch

    with pytest.raises(IdentityModelError, match="not found"):
        ArcFaceEmbedder(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(IdentityModelError, match="junk.onnx.*not a loadable ONNX"):
        ArcFaceEmbedder(junk)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(IdentityModelError, match="other.pth.*not an arcface_torch iresnet"):
        ArcFaceEmbedder(other)
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(IdentityModelError, match="unknown ArcFace model format"):
        ArcFaceEmbedder(txt)
    with pytest.raises(IdentityModelError, match="needs model_path"):
        get_embedder("arcface")
    with pytest.raises(IdentityModelError, match="unknown identity backend"):
        get_embedder("facenet")


def test_arcface_onnx_with_wrong_input_shape_is_rejected(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    path = tmp_path / "wrong.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 64, 64), str(path), dynamo=False)
    with pytest.raises(IdentityModelError, match="112"):
        ArcFaceEmbedder(path)


def test_cosine():
    assert cosine([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 2]) == pytest.approx(0.0)
    assert np.isnan(cosine([0, 0], [1, 0]))
