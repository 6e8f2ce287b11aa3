"""Face identity embeddings: who is this face, comparable across frames and clips.

* ``DlibEmbedder`` (default, offline): dlib's 128-d ResNet face descriptor shipped by the
  ``face-recognition-models`` package, aligned by dlib's 5-point shape predictor.
* ``ArcFaceEmbedder`` (reference backend): a user-supplied ArcFace model, either an
  InsightFace ONNX export (``w600k_r50.onnx``-style, input 1x3x112x112, run by onnxruntime)
  or an ``arcface_torch`` ``backbone.pth`` state dict of an iresnet (18/34/50/100; the
  architecture is defined below). Faces are aligned to the standard 112x112 ArcFace
  5-point template with ``cv2.estimateAffinePartial2D``.

Every embedding is L2-normalised, so ``cosine`` is a dot product.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

# ArcFace 5-point template for 112x112 crops (InsightFace ``arcface_dst``): right eye, left eye
# (subject's; image-left first), nose tip, right mouth corner, left mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], dtype=np.float32,
)


class IdentityModelError(ValueError):
    """A user-supplied identity model file cannot be used; the message names the file."""


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(a @ b / (na * nb))


def _l2(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class Embedder:
    """Face -> L2-normalised identity vector. ``box`` is (x1, y1, x2, y2) px in ``rgb``."""

    name: str = ""
    version: str = ""
    dim: int = 0

    def embed(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def backend(self) -> str:
        return f"{self.name}@{self.version}"


class DlibEmbedder(Embedder):
    """dlib ``dlib_face_recognition_resnet_model_v1`` (128-d), offline default."""

    name = "dlib_resnet_v1"
    dim = 128

    def __init__(self, num_jitters: int = 0):
        import dlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import face_recognition_models as frm
        self.version = f"dlib-{dlib.__version__}+face_recognition_models-{frm.__version__}"
        self._shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self._dlib = dlib
        self.num_jitters = int(num_jitters)

    def embed(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = img.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        rect = self._dlib.rectangle(int(max(0, round(x1))), int(max(0, round(y1))),
                                    int(min(w - 1, round(x2))), int(min(h - 1, round(y2))))
        shape = self._shape(img, rect)
        desc = self._net.compute_face_descriptor(img, shape, self.num_jitters)
        return _l2(np.array(desc))


# --- ArcFace reference backend ---------------------------------------------------------------
def align_face(rgb: np.ndarray, points5: np.ndarray, size: int = 112) -> np.ndarray:
    """Similarity-warp ``rgb`` so that ``points5`` land on the ArcFace template (size x size)."""
    import cv2

    src = np.asarray(points5, dtype=np.float32).reshape(5, 2)
    dst = ARCFACE_TEMPLATE * (size / 112.0)
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:
        raise ValueError("cannot estimate the alignment transform from the 5 face points")
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (size, size), borderValue=0)


def box_points5(box) -> np.ndarray:
    """Template 5 points placed in the square around ``box``: a fallback alignment when no
    landmarks are found (assumes a frontal face filling the box)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1)
    return (ARCFACE_TEMPLATE / 112.0 - 0.5) * side + np.array([cx, cy], dtype=np.float32)


def build_iresnet(layers=(3, 4, 14, 3), num_features: int = 512):
    """arcface_torch's IResNet (insightface ``recognition/arcface_torch/backbones/iresnet.py``)
    with the same parameter names, so its ``backbone.pth`` state dicts load strictly."""
    import torch
    from torch import nn

    def conv3x3(i, o, stride=1):
        return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)

    class IBasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
            self.conv1 = conv3x3(inplanes, planes)
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
            self.prelu = nn.PReLU(planes)
            self.conv2 = conv3x3(planes, planes, stride)
            self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity

    class IResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
            self.prelu = nn.PReLU(64)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1])
            self.layer3 = self._make_layer(256, layers[2])
            self.layer4 = self._make_layer(512, layers[3])
            self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
            self.dropout = nn.Dropout(p=0.0)
            self.fc = nn.Linear(512 * 7 * 7, num_features)
            self.features = nn.BatchNorm1d(num_features, eps=1e-5)

        def _make_layer(self, planes, blocks):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=2, bias=False),
                nn.BatchNorm2d(planes, eps=1e-5),
            )
            mods = [IBasicBlock(self.inplanes, planes, 2, downsample)]
            self.inplanes = planes
            mods += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*mods)

        def forward(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.dropout(torch.flatten(self.bn2(x), 1))
            return self.features(self.fc(x))

    return IResNet()


IRESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


def _iresnet_layers_from_state(state: dict) -> tuple[int, ...] | None:
    counts = []
    for li in range(1, 5):
        blocks = {k.split(".")[1] for k in state if k.startswith(f"layer{li}.")}
        if not blocks:
            return None
        counts.append(len(blocks))
    return tuple(counts)


class ArcFaceEmbedder(Embedder):
    """ArcFace from a user-supplied file: ``.onnx`` (InsightFace, onnxruntime) or ``.pth`` /
    ``.pt`` (arcface_torch iresnet state dict). Landmarks for the 5-point alignment come from
    the mediapipe mesh (eye centres = iris centres, nose tip, mouth corners); if the mesh finds
    no face the template is placed in the box instead."""

    name = "arcface"

    def __init__(self, model_path: str | os.PathLike):
        self.model_path = Path(model_path)
        p = self.model_path
        if not p.is_file():
            raise IdentityModelError(
                f"{p}: ArcFace model file not found; pass the path of an InsightFace ONNX "
                "(e.g. w600k_r50.onnx) or an arcface_torch backbone.pth")
        suffix = p.suffix.lower()
        if suffix == ".onnx":
            self._load_onnx(p)
        elif suffix in (".pth", ".pt"):
            self._load_torch(p)
        else:
            raise IdentityModelError(
                f"{p}: unknown ArcFace model format {suffix!r}; use an InsightFace .onnx or an "
                "arcface_torch .pth state dict")
        self._mesh = None

    # loading --------------------------------------------------------------------------------
    def _load_onnx(self, p: Path) -> None:
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise IdentityModelError(
                f"{p}: not a loadable ONNX model ({type(e).__name__}: {str(e)[:200]}); "
                "pass an InsightFace recognition ONNX such as w600k_r50.onnx") from e
        inp = sess.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != [112, 112]:
            raise IdentityModelError(
                f"{p}: ONNX input {inp.name} has shape {shape}; an ArcFace model takes "
                "N x 3 x 112 x 112 face crops")
        out = sess.get_outputs()[0]
        self._sess, self._input_name = sess, inp.name
        self._run = self._run_onnx
        self.dim = int(out.shape[-1]) if isinstance(out.shape[-1], int) else 0
        self.version = f"onnx:{p.name}+onnxruntime-{ort.__version__}"

    def _load_torch(self, p: Path) -> None:
        import torch

        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise IdentityModelError(
                f"{p}: cannot read as a torch state dict ({type(e).__name__}: {str(e)[:200]}); "
                "pass arcface_torch's backbone.pth") from e
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise IdentityModelError(f"{p}: expected a state dict of tensors (arcface_torch "
                                     f"backbone.pth), got {type(state).__name__}")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        layers = _iresnet_layers_from_state(state)
        if layers is None or "fc.weight" not in state:
            raise IdentityModelError(
                f"{p}: not an arcface_torch iresnet state dict (no layer1..layer4 / fc keys); "
                "pass the backbone.pth of an iresnet18/34/50/100 model")
        depth = next((d for d, ls in IRESNET_LAYERS.items() if ls == layers), None)
        net = build_iresnet(layers=layers, num_features=int(state["fc.weight"].shape[0]))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise IdentityModelError(
                f"{p}: state dict does not match the iresnet architecture: {str(e)[:300]}") from e
        net.eval()
        self._net = net
        self._run = self._run_torch
        self.dim = int(state["fc.weight"].shape[0])
        self.version = (f"torch:{p.name}:iresnet{depth or '-'.join(map(str, layers))}"
                        f"+torch-{torch.__version__}")

    # inference ------------------------------------------------------------------------------
    @staticmethod
    def _blob(face112: np.ndarray) -> np.ndarray:
        # InsightFace / arcface_torch preprocessing: RGB, (x - 127.5) / 127.5, NCHW
        x = (face112.astype(np.float32) - 127.5) / 127.5
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def _run_onnx(self, blob: np.ndarray) -> np.ndarray:
        return self._sess.run(None, {self._input_name: blob})[0]

    def _run_torch(self, blob: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._net(torch.from_numpy(blob)).numpy()

    def points5(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        from curation.faces import FaceMesh, five_points

        if self._mesh is None:
            self._mesh = FaceMesh()
        lm = self._mesh.landmarks(rgb, np.asarray(box, float))
        return box_points5(box) if lm is None else five_points(lm)

    def embed(self, rgb: np.ndarray, box: np.ndarray, points5: np.ndarray | None = None) -> np.ndarray:
        pts = self.points5(rgb, box) if points5 is None else np.asarray(points5, np.float32)
        face = align_face(rgb, pts, 112)
        return _l2(self._run(self._blob(face))[0])


def get_embedder(backend: str = "dlib", model_path: str | None = None) -> Embedder:
    """``"dlib"`` (offline default) or ``"arcface"`` (needs ``model_path``)."""
    b = (backend or "dlib").lower()
    if b == "dlib":
        return DlibEmbedder()
    if b == "arcface":
        if not model_path:
            raise IdentityModelError(
                "identity backend 'arcface' needs model_path: an InsightFace ONNX (w600k_r50.onnx) "
                "or an arcface_torch backbone.pth (hub weights cannot be downloaded here)")
        return ArcFaceEmbedder(model_path)
    raise IdentityModelError(f"unknown identity backend {backend!r}; use 'dlib' or 'arcface'")
