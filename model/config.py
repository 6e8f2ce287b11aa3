"""Model/training configuration: YAML files in ``model/configs`` (``tiny``, ``base``) or a path.

A config is a nested dict (it is stored verbatim in every checkpoint). ``load_config`` merges
overrides, checks the frame arithmetic and the patch sizes, and names the file on any error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TEMPORAL_COMPRESSION = 4  # latent frame 0 = video frame 0; every later latent frame = 4 frames


class ConfigError(ValueError):
    """A config value is invalid; the message names the file and the key."""


def latent_frames(num_frames: int) -> int:
    """Number of latent frames for a 4n+1 frame clip: the first frame alone, then groups of 4."""
    check_num_frames(num_frames)
    return (num_frames - 1) // TEMPORAL_COMPRESSION + 1


def check_num_frames(num_frames: int) -> None:
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_COMPRESSION:
        raise ConfigError(f"num_frames={num_frames} is not 4n+1 (e.g. 17, 33, 81)")


def frames_for_latents(num_latents: int) -> int:
    return (num_latents - 1) * TEMPORAL_COMPRESSION + 1


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found; pass one of {available_configs()} or a YAML path")
        return p
    p = CONFIG_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ConfigError(f"{name_or_path}: unknown config; pass one of {available_configs()} or a YAML path")
    return p


def load_config(name_or_path: str | dict, overrides: dict | None = None) -> dict[str, Any]:
    if isinstance(name_or_path, dict):
        cfg, src = copy.deepcopy(name_or_path), "<dict>"
    else:
        path = resolve_config_path(name_or_path)
        src = str(path)
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        base_name = cfg.pop("extends", None)
        if base_name:
            cfg = _merge(load_config(base_name), cfg)
    if overrides:
        cfg = _merge(cfg, overrides)
    validate(cfg, src)
    return cfg


def validate(cfg: dict, src: str = "<config>") -> None:
    try:
        v, m = cfg["video"], cfg["model"]
        check_num_frames(int(v["num_frames"]))
        p = int(v["patch"])
        if int(v["height"]) % p or int(v["width"]) % p:
            raise ConfigError(f"video.height and video.width (the face crop) must be multiples of patch ({p})")
        if int(m["dim"]) % int(m["heads"]):
            raise ConfigError("model.dim must be divisible by model.heads")
        if int(m["audio_window"]) % 2 != 1:
            raise ConfigError("model.audio_window must be odd (offsets -w//2..+w//2)")
        if cfg["face_encoder"]["backend"] not in ("cnn", "clip_vit"):
            raise ConfigError("face_encoder.backend must be cnn or clip_vit")
        if cfg["audio"]["backend"] not in ("logmel", "wav2vec2"):
            raise ConfigError("audio.backend must be logmel or wav2vec2")
        if int(cfg["train"]["stage"]) not in (1, 2):
            raise ConfigError("train.stage must be 1 or 2")
    except KeyError as e:
        raise ConfigError(f"{src}: missing key {e}; start from model/configs/tiny.yaml") from e
    except ConfigError as e:
        raise ConfigError(f"{src}: {e}") from e
