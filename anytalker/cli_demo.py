"""`anytalker demo`: curate the real example clips with both pipelines and say what came out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kernel.data import DEMO_MISMATCHED_PAIR as MISMATCHED
from kernel.data import DEMO_MULTI_PERSON as MULTI
from kernel.data import DEMO_SINGLE_PERSON as SINGLE
from kernel.errors import UserError
from kernel.media import require_ffmpeg


def build_mismatched(root: Path, out: Path) -> Path:
    """The demo's negative: a talking clip muxed with another speaker's audio (video stream copied),
    so a run shows what the sync judgment rejects next to what it accepts."""
    video, audio = (root / f for f in MISMATCHED)
    dest = out / "negatives" / f"{video.stem}+{audio.stem}.mp4"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [require_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(audio),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest", str(dest)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    if res.returncode != 0:
        dest.unlink(missing_ok=True)
        raise UserError(f"{video}: could not mux it with {audio} for the demo's negative "
                        f"({res.stderr.decode(errors='replace').strip()[-200:]}); check ffmpeg")
    return dest


def cmd_demo(args) -> int:
    from kernel.data import resolve_data_root
    from pipelines.runner import run_curation

    root = resolve_data_root(args.data, need=SINGLE + MULTI + MISMATCHED).absolute()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"data: {root}")
    negative = build_mismatched(root, out.absolute())
    print(f"built negative (another speaker's audio over a talking face): {negative}")
    runs = (("single_person", [root / f for f in SINGLE] + [negative]), ("multi_person", [root / f for f in MULTI]))
    for config, files in runs:
        listing = out / f"{config}.inputs.txt"
        listing.write_text("".join(f"{f}\n" for f in files))
        summary = run_curation(config, listing, out / config, executor=args.executor, data_root=root,
                               overwrite=args.overwrite,
                               progress=not getattr(args, "quiet", False))
        print(f"\n== {config} ==")
        print(summary.describe())
    print(f"\ninspect: anytalker curate status {out / 'single_person'}; "
          f"anytalker curate rejects {out / 'single_person'}")
    return 0


def register(sub) -> None:
    from anytalker import cli_common as c

    p = c.leaf(sub, "demo", "curate the example talking clips (single- and two-person pipelines)", [
        "anytalker demo",
        "anytalker demo --data ../shared/data --output demo_run --executor ray",
    ])
    c.add_data(p)
    c.add_output(p, "folder for the two runs (default: %(default)s)", default="demo_run", metavar="DIR")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine; ray: Ray Data (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="start the runs over")
    p.set_defaults(func=cmd_demo)
