"""The dependency direction between the project's packages, read from the source with ``ast``.

    kernel       <- everything (imports none of the project packages)
    curation     -> kernel
    pipelines    -> curation, kernel
    metrics      -> curation, kernel
    model        -> pipelines, kernel          (+ the documented exceptions in ALLOWED_EXCEPTIONS)
    benchmarks   -> metrics, pipelines, curation, kernel; never model
    anytalker    -> anything (the CLI, on top); imported by no package (tests excepted)

Every ``import`` / ``from ... import`` counts, at any depth (inside functions, ``try`` blocks,
``if TYPE_CHECKING``), relative imports resolved, plus ``importlib.import_module("...")`` and
``__import__("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "curation": {"kernel"},
    "pipelines": {"curation", "kernel"},
    "metrics": {"curation", "kernel"},
    "model": {"pipelines", "kernel"},
    "benchmarks": {"metrics", "pipelines", "curation", "kernel"},
    "anytalker": {"kernel", "curation", "pipelines", "metrics", "model", "benchmarks"},
}
PACKAGES = tuple(ALLOWED)

# (importing package or file, imported module prefix) -> why it is accepted for now.
# Each entry must still be used: a stale entry fails the test, so the list only shrinks.
ALLOWED_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("model", "curation.media"):
        "the model decodes its reference images, training clips and audio with the same media "
        "primitives as curation (VideoReader, load_audio, write_video); moving them below pipelines "
        "is part of the decode-once engine rework (issue 12 item 1), not done while that is in flight",
    ("model", "curation.faces"):
        "`anytalker generate` (reference image, when no --boxes are given) and the train-set builder "
        "(model/trainset.py) detect faces with curation's FaceDetector, and both run its face mesh for "
        "lip landmarks (the motion head's labels, the reference's lips); routing it through pipelines "
        "is left to the owners of that code (issue 12 item 5)",
    ("model", "curation.sync_judge"):
        "issue 14 asks for the offline sync judge in the model's loop: the motion head's training "
        "loss (train.motion_judge_weight) and generation's guidance (model/sync_guidance.py) run the "
        "frozen judge networks with the judge's own features and contrastive loss; one copy of them, "
        "curation's (its first user, the sync filter), rather than a second one under model/",
}


@dataclass(frozen=True)
class Import:
    file: str  # repository-relative path
    line: int
    module: str  # absolute dotted name


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in one file, relative ones resolved against the file's package."""
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(rel, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if node.module is None:  # `from . import x`: x may be a module of that package
                out += [Import(rel, node.lineno, f"{target}.{a.name}".strip(".")) for a in node.names]
            else:
                out.append(Import(rel, node.lineno, target))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in ("import_module", "__import__"):
                out.append(Import(rel, node.lineno, node.args[0].value))
    return out


def _exception_for(imp: Import, src_pkg: str) -> tuple[str, str] | None:
    for key in ALLOWED_EXCEPTIONS:
        who, prefix = key
        if who in (src_pkg, imp.file) and (imp.module == prefix or imp.module.startswith(prefix + ".")):
            return key
    return None


def check_layers(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """(violations as 'file:line: a -> b', the exception entries that were needed)."""
    violations, used = [], set()
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            for imp in imports_of(path, root):
                top = imp.module.split(".")[0]
                if top not in PACKAGES or top == pkg or top in ALLOWED[pkg]:
                    continue
                key = _exception_for(imp, pkg)
                if key is not None:
                    used.add(key)
                    continue
                violations.append(f"{imp.file}:{imp.line}: {pkg} imports {imp.module} "
                                  f"({pkg} may import only {', '.join(sorted(ALLOWED[pkg])) or 'no project package'})")
    return violations, used


def test_every_package_imports_only_the_layers_below_it():
    violations, _ = check_layers(REPO)
    assert not violations, "layer violations:\n" + "\n".join(violations)


def test_every_allowed_exception_is_still_needed():
    _, used = check_layers(REPO)
    stale = [f"{who} -> {prefix}" for who, prefix in ALLOWED_EXCEPTIONS if (who, prefix) not in used]
    assert not stale, "remove these ALLOWED_EXCEPTIONS entries, nothing needs them any more: " + "; ".join(stale)


def test_no_package_imports_the_cli():
    hits = [f"{i.file}:{i.line}: imports {i.module}"
            for pkg in PACKAGES if pkg != "anytalker"
            for path in sorted((REPO / pkg).rglob("*.py"))
            for i in imports_of(path, REPO) if i.module.split(".")[0] == "anytalker"]
    assert not hits, "the CLI package is on top; import kernel instead:\n" + "\n".join(hits)


@pytest.fixture
def toy_tree(tmp_path: Path) -> Path:
    files = {
        "kernel/__init__.py": "",
        "curation/__init__.py": "",
        "curation/ok.py": "from kernel import errors\nfrom . import sibling\n",
        "metrics/__init__.py": "",
        "metrics/deep.py": "def f():\n    try:\n        from pipelines.runner import x\n    except ImportError:\n        pass\n",
        "model/__init__.py": "",
        "model/rel.py": "from ..anytalker import cli\n",
        "benchmarks/__init__.py": "",
        "benchmarks/dyn.py": "import importlib\nimportlib.import_module('model.train')\n",
        "pipelines/__init__.py": "",
        "pipelines/up.py": "import anytalker.errors\n",
        "anytalker/__init__.py": "import model, benchmarks\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_checker_finds_nested_relative_and_dynamic_imports(toy_tree):
    violations, _ = check_layers(toy_tree)
    assert sorted(v.split(": ")[0] for v in violations) == [
        "benchmarks/dyn.py:2", "metrics/deep.py:3", "model/rel.py:1", "pipelines/up.py:1"]
    assert any("metrics imports pipelines.runner" in v for v in violations)
