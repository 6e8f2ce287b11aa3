"""Checkpoints: model + optimizer + step + RNG states + config in one torch file.

Written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = "anytalker-afca-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    pass


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer, step: int, cfg: dict,
                    frontend: dict, extra: dict | None = None) -> Path:
    from kernel import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__,
        "torch_version": torch.__version__, "step": int(step), "config": cfg, "audio_frontend": frontend,
        "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": rng_state(), **(extra or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass a .pt file written by `anytalker train`")
    try:
        # numpy RNG state in the file needs full unpickling; only load checkpoints you trust
        blob = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({e}); pass a file written by "
                              "`anytalker train`") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an AnyTalker AFCA checkpoint; pass a file written by `anytalker train`")
    if blob.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {blob['format_version']} is newer than this toolkit "
                              f"reads ({FORMAT_VERSION}); upgrade the toolkit")
    return blob
