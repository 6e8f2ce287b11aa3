"""Where the real example media is: --data, $ANYTALKER_DATA, ../shared/data, or the fetched set."""

from __future__ import annotations

import os
from pathlib import Path

from anytalker.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


def candidate_roots() -> list[tuple[str, Path]]:
    out = []
    if os.environ.get("ANYTALKER_DATA"):
        out.append(("$ANYTALKER_DATA", Path(os.environ["ANYTALKER_DATA"])))
    out.append(("../shared/data", Path.cwd().parent / "shared" / "data"))
    out.append(("../shared/data beside the repository", REPO_ROOT.parent / "shared" / "data"))
    from anytalker.assets import examples_dir

    out.append(("fetched example set", examples_dir()))
    return out


def resolve_data_root(explicit: str | os.PathLike | None = None, need: tuple[str, ...] = ()) -> Path:
    """First existing root that holds every file in ``need`` (paths relative to the root)."""
    if explicit:
        root = Path(explicit)
        missing = [n for n in need if not (root / n).exists()]
        if not root.is_dir() or missing:
            raise UserError(f"{root}: not a data folder with {', '.join(missing) or 'files'}; "
                            "pass --data pointing at a folder laid out like shared/data")
        return root
    tried = []
    for label, root in candidate_roots():
        tried.append(f"{label} ({root})")
        if root.is_dir() and all((root / n).exists() for n in need):
            return root
    raise UserError(
        "no example media found; tried " + "; ".join(tried) + ". Put the data set at ../shared/data, "
        "set ANYTALKER_DATA=/path/to/data, or run `anytalker fetch --examples` (needs network; "
        "offline: `anytalker fetch --examples --from DIR` with a copy of the files)"
    )
