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
                               overwrite=args.overwrite, progress=not args.quiet)
        print(f"\n== {config} ==")
        print(summary.describe())
    print(f"\ninspect: anytalker curate status {out / 'single_person'}; "
          f"anytalker curate rejects {out / 'single_person'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="curate the example talking clips (single- and two-person pipelines)")
    p.add_argument("--data", default=None,
                   help="data folder (default: $ANYTALKER_DATA, ../shared/data, then the fetched example set)")
    p.add_argument("--output", default="demo_run", help="where the runs go (default ./demo_run)")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--overwrite", action="store_true", help="start the runs over")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
