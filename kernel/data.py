"""Where the real example media is: the ONE resolver every package, test and script uses.

Order: ``--data`` (explicit), ``$ANYTALKER_DATA`` (``$ANYTALKER_SHARED`` is accepted as a
deprecated alias), ``../shared/data`` (beside the working directory, then beside the repository),
then the example set ``anytalker fetch --examples`` downloads.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from kernel.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "ANYTALKER_DATA"
DEPRECATED_DATA_ENV = "ANYTALKER_SHARED"  # the name tests and perf scripts used before DATA_ENV

# The demo's real clips (paths relative to the data root): `anytalker demo` curates them and
# benchmarks/perf/curation_throughput.py times them, so they live below both.
DEMO_SINGLE_PERSON = (
    "talking/latentsync_demo1_video.mp4",
    "talking/infinitetalk_ref_video.mp4",
    "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4",
)
DEMO_MULTI_PERSON = ("anytalker_benchmark/interact_11.mp4",)
# (video, other speech): muxed by the demo into a mismatched negative that must be rejected
DEMO_MISMATCHED_PAIR = ("talking/latentsync_demo1_video.mp4", "talking/latentsync_demo1_audio.wav")


def _env_root() -> tuple[str, Path] | None:
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}", Path(os.environ[DATA_ENV])
    if os.environ.get(DEPRECATED_DATA_ENV):
        warnings.warn(f"${DEPRECATED_DATA_ENV} is deprecated; set ${DATA_ENV} instead", DeprecationWarning,
                      stacklevel=3)
        return f"${DEPRECATED_DATA_ENV} (deprecated: use ${DATA_ENV})", Path(os.environ[DEPRECATED_DATA_ENV])
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("ANYTALKER_CACHE", Path.home() / ".cache" / "anytalker"))


def examples_dir() -> Path:
    """Where ``anytalker fetch --examples`` puts the example media (the last data root tried)."""
    return cache_dir() / "examples"


def candidate_roots() -> list[tuple[str, Path]]:
    """(label, folder) in the order they are tried, whether they exist or not."""
    out = []
    env = _env_root()
    if env:
        out.append(env)
    out.append(("../shared/data", Path.cwd().parent / "shared" / "data"))
    beside_repo = REPO_ROOT.parent / "shared" / "data"
    if beside_repo.absolute() != out[-1][1].absolute():
        out.append(("../shared/data beside the repository", beside_repo))
    out.append(("fetched example set", examples_dir()))
    return out


def find_data_root(need: tuple[str, ...] = ()) -> Path | None:
    """First existing root that holds every file in ``need``, or None (for callers that skip)."""
    for _label, root in candidate_roots():
        if root.is_dir() and all((root / n).exists() for n in need):
            return root
    return None


def resolve_data_root(explicit: str | os.PathLike | None = None, need: tuple[str, ...] = ()) -> Path:
    """``explicit`` if given (it must hold ``need``), else the first root that holds every file in
    ``need`` (paths relative to the root). Raises ``UserError`` naming every place tried."""
    if explicit:
        root = Path(explicit)
        missing = [n for n in need if not (root / n).exists()]
        if not root.is_dir() or missing:
            raise UserError(f"{root}: not a data folder with {', '.join(missing) or 'files'}; "
                            "pass --data pointing at a folder laid out like shared/data")
        return root
    found = find_data_root(need)
    if found is not None:
        return found
    tried = [f"{label} ({root})" for label, root in candidate_roots()]
    raise UserError(
        "no example media found" + (f" with {', '.join(need)}" if need else "") + "; tried " + "; ".join(tried)
        + f". Put the data set at ../shared/data, set {DATA_ENV}=/path/to/data, or run `anytalker fetch "
        "--examples` (needs network; offline: `anytalker fetch --examples --from DIR` with a copy of the files)"
    )


def default_data_root(need: tuple[str, ...] = ()) -> Path:
    """The resolved root, or — when none exists — the first place searched (for a default value
    whose absence the caller reports itself, e.g. a test skip naming where to put the data)."""
    found = find_data_root(need)
    return found if found is not None else candidate_roots()[0][1]
