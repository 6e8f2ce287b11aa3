"""`anytalker demo`: curate the real example clips with both pipelines and say what came out."""

from __future__ import annotations

from pathlib import Path

from kernel.data import DEMO_MULTI_PERSON as MULTI
from kernel.data import DEMO_SINGLE_PERSON as SINGLE


def cmd_demo(args) -> int:
    from kernel.data import resolve_data_root
    from pipelines.runner import run_curation

    root = resolve_data_root(args.data, need=SINGLE + MULTI).absolute()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"data: {root}")
    for config, files in (("single_person", SINGLE), ("multi_person", MULTI)):
        listing = out / f"{config}.inputs.txt"
        listing.write_text("".join(f"{root / f}\n" for f in files))
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
                   help="local: this process; ray: Ray Data (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="start the runs over")
    p.set_defaults(func=cmd_demo)
