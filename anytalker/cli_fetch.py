"""`anytalker fetch`: download named assets into the cache, sha256-verified."""

from __future__ import annotations

from kernel.errors import UserError


def cmd_fetch(args) -> int:
    from kernel import assets

    if args.list or (not args.names and not args.examples):
        print(f"cache: {assets.cache_dir()}")
        for name, a in sorted(assets.registry().items()):
            pin = a.sha256 or assets.expected_sha256(a)
            state = "present" if a.path.exists() else "missing"
            print(f"{name:60s} {a.kind:8s} {state:8s} sha256={pin[:16] + '...' if pin else 'unpinned (needs --sha256 or --pin)'}")
        return 0
    if args.examples:
        root = assets.fetch_examples(args.source)
        print(f"example media in {root}")
    for name in args.names:
        if args.source and len(args.names) > 1:
            raise UserError("--from takes one asset at a time")
        path = assets.fetch(name, source=args.source, sha256=args.sha256, pin=args.pin, force=args.force)
        print(f"{name}: {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("fetch", help="download example media and reference weights (sha256-verified)")
    p.add_argument("names", nargs="*", help="asset names (see --list)")
    p.add_argument("--list", action="store_true", help="list known assets and whether they are present")
    p.add_argument("--examples", action="store_true", help="fetch the whole example media set")
    p.add_argument("--from", dest="source", default=None,
                   help="copy from this local file (or folder, with --examples) or URL instead of the default URL")
    p.add_argument("--sha256", default=None, help="expected sha256 for an asset without a published pin")
    p.add_argument("--pin", action="store_true", help="trust the first download of an unpinned asset and record its sha256")
    p.add_argument("--force", action="store_true", help="re-download even if present and verified")
    p.set_defaults(func=cmd_fetch)
