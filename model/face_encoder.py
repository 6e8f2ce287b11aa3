"""Face encoders: a face crop of the reference frame -> face tokens (B, F, dim).

* ``FaceCNN`` (default): small trainable CNN, (face_size/8)^2 tokens.
* ``ClipViT``: a CLIP-style vision transformer whose parameter names follow OpenAI CLIP's
  ``VisionTransformer`` (conv1, class_embedding, positional_embedding, ln_pre,
  transformer.resblocks.N.{ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj}, ln_post), so a user-supplied
  state dict (e.g. ``clip_model.visual.state_dict()``) loads directly; width, patch, image size
  and depth are read from the tensors' shapes. All output tokens are projected to the model dim.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FaceEncoderError(RuntimeError):
    pass


class FaceCNN(nn.Module):
    name = "cnn"

    def __init__(self, dim: int, face_size: int = 32, width: int = 64):
        super().__init__()
        self.face_size = face_size
        self.net = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, 2, 1), nn.GroupNorm(8, width // 2), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, 2, 1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.GroupNorm(8, width), nn.SiLU(),
        )
        n = (face_size // 8) ** 2
        self.pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.proj = nn.Linear(width, dim)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """faces (B, 3, S, S) in [-1, 1] -> (B, (S/8)^2, dim)."""
        x = self.net(faces).flatten(2).transpose(1, 2)
        return self.proj(x + self.pos)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x):  # (N, B, width), CLIP's sequence-first layout
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class ClipViT(nn.Module):
    name = "clip_vit"

    def __init__(self, dim: int, image_size: int = 32, patch: int = 8, width: int = 64, layers: int = 2,
                 heads: int | None = None):
        super().__init__()
        heads = heads or max(1, width // 64)
        self.face_size = image_size
        self.vit_config = {"image_size": image_size, "patch": patch, "width": width, "layers": layers, "heads": heads}
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = _Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)  # ours, trainable: CLIP width -> model dim
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def vit_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("out.")]

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = ((faces + 1) / 2 - self.mean) / self.std
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.ln_pre(x).transpose(0, 1)
        x = self.transformer(x).transpose(0, 1)
        return self.out(self.ln_post(x))

    @staticmethod
    def config_from_state_dict(state: dict, heads: int | None = None) -> dict:
        try:
            width, _, patch, _ = state["conv1.weight"].shape
            n_pos = state["positional_embedding"].shape[0]
        except KeyError as e:
            raise FaceEncoderError(f"state dict lacks {e}: expected OpenAI-CLIP VisionTransformer names "
                                   "(conv1.weight, positional_embedding, transformer.resblocks.N...)") from e
        grid = int(round((n_pos - 1) ** 0.5))
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        return {"image_size": grid * patch, "patch": int(patch), "width": int(width), "layers": layers,
                "heads": heads or max(1, int(width) // 64)}


def load_clip_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FaceEncoderError(f"{path}: CLIP vision weights not found; pass a torch state dict file")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FaceEncoderError(f"{path}: cannot read a torch state dict: {e}") from e
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    # accept a full CLIP state dict too: keep the ``visual.`` sub-tree
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    state.pop("proj", None)  # CLIP's joint-embedding projection is not used: all tokens are kept
    return state


def build_face_encoder(cfg: dict) -> nn.Module:
    fe, dim, size = cfg["face_encoder"], int(cfg["model"]["dim"]), int(cfg["model"]["face_size"])
    if fe["backend"] == "cnn":
        return FaceCNN(dim, size)
    vit_cfg = fe.get("vit")
    state = None
    if fe.get("weights"):
        state = load_clip_state(fe["weights"])
        vit_cfg = ClipViT.config_from_state_dict(state, fe.get("heads"))
        fe["vit"] = vit_cfg  # recorded in the config so a checkpoint rebuilds without the file
    if vit_cfg is None:
        raise FaceEncoderError("face_encoder.backend clip_vit needs face_encoder.weights (a CLIP vision state dict)")
    enc = ClipViT(dim, **vit_cfg)
    if state is not None:
        missing, unexpected = enc.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("out.")]
        if missing or unexpected:
            raise FaceEncoderError(f"{fe['weights']}: CLIP vision state dict mismatch: missing {missing[:5]}, "
                                   f"unexpected {unexpected[:5]}")
        if fe.get("freeze", True):
            for p in enc.vit_parameters():
                p.requires_grad_(False)
    return enc


def prepare_faces(faces: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, 3, h, w) face crops to the encoder's input size."""
    if faces.shape[-1] == size and faces.shape[-2] == size:
        return faces
    return F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
