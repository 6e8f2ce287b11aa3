"""`anytalker fetch`: download named assets into the cache, sha256-verified (pooch)."""

from __future__ import annotations

from anytalker.cli_common import JSON_STDOUT, progress_enabled, write_json_report
from kernel.errors import UserError


def cmd_fetch(args) -> int:
    from kernel import assets

    if args.list or (not args.names and not args.examples):
        rows = []
        for name, a in sorted(assets.registry().items()):
            pin = a.sha256 or assets.expected_sha256(a)
            where, label = assets.locate(a, args.data)
            rows.append({"name": name, "kind": a.kind, "present": where is not None,
                         "path": str(where) if where else None, "found_in": label or None, "sha256": pin})
        if args.json:
            write_json_report(args.json, {"cache": str(assets.cache_dir()), "assets": rows})
            if args.json == JSON_STDOUT:
                return 0
        print(f"cache: {assets.cache_dir()}")
        states = [f"present ({r['found_in']})" if r["present"] else "missing" for r in rows]
        width = max(len(r["name"]) for r in rows)
        swidth = max(len(x) for x in states)
        for r, state in zip(rows, states):
            pin = r["sha256"][:16] + "..." if r["sha256"] else "unpinned (needs --sha256 or --pin)"
            print(f"{r['name']:{width}s}  {r['kind']:7s}  {state:{swidth}s}  sha256={pin}")
        return 0
    if args.examples:
        root = assets.fetch_examples(args.source, progress=progress_enabled(args))
        print(f"example media in {root}")
    for name in args.names:
        if args.source and len(args.names) > 1:
            raise UserError("--from takes one asset at a time")
        path = assets.fetch(name, source=args.source, sha256=args.sha256, pin=args.pin, force=args.force,
                            progress=progress_enabled(args))
        print(f"{name}: {path}")
    return 0


def register(sub) -> None:
    from anytalker import cli_common as c

    p = c.leaf(sub, "fetch", "download example media and reference weights (sha256-verified)", [
        "anytalker fetch --list",
        "anytalker fetch --examples",
        "anytalker fetch syncnet_v2 --sha256 HEX",
        "anytalker fetch syncnet_v2 --from ./syncnet_v2.model --pin",
    ])
    p.add_argument("names", nargs="*", help="asset names (see --list)")
    p.add_argument("--list", action="store_true",
                   help="list known assets, where they are present (data roots for media, the cache for weights)")
    p.add_argument("--examples", action="store_true", help="fetch the whole example media set")
    c.add_data(p, "data root to look in first for the example media (--list)")
    c.add_json(p, "the --list table")
    p.add_argument("--from", dest="source", default=None,
                   help="copy from this local file (or folder, with --examples) or URL instead of the default URL")
    p.add_argument("--sha256", default=None, help="expected sha256 for an asset without a published pin")
    p.add_argument("--pin", action="store_true", help="trust the first download of an unpinned asset and record its sha256")
    p.add_argument("--force", action="store_true", help="re-download even if present and verified")
    p.set_defaults(func=cmd_fetch)
