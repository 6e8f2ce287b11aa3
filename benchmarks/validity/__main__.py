"""``python -m benchmarks.validity CHECK --data DIR --json OUT``: dispatch to a check module."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import benchmarks.validity as package
from kernel.data import resolve_data_root
from kernel.errors import UserError


def discover_checks() -> dict[str, object]:
    """Every module of this package that declares ``CHECK``, by its command name."""
    checks = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        name = getattr(module, "CHECK", None)
        if name:
            checks[name] = module
    return checks


def main(argv: list[str] | None = None) -> int:
    checks = discover_checks()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validity", description=__doc__)
    sub = parser.add_subparsers(dest="check", required=True, metavar="CHECK")
    for name, module in sorted(checks.items()):
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else "")
        # required: a check's labelled folder is often a subfolder or a built set, not the data root
        p.add_argument("--data", required=True, help="labelled data folder (layout as ../shared/data)")
        p.add_argument("--json", dest="json_out", help="write the figures as JSON to this path")
        module.add_arguments(p)
    args = parser.parse_args(argv)
    try:
        args.data = str(resolve_data_root(args.data))  # the kernel's check and one-line error
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = checks[args.check].run(args)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
