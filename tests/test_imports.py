"""Every module imports on its own in a fresh interpreter, and the index layer without the heavy dependencies."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["retrieval", "index", "migrations"]
#: migrations/env.py runs Alembic's migration at import (it needs Alembic's context); the scripts in
#: migrations/versions/ are loaded by Alembic from their files, not imported as modules.
NOT_IMPORTABLE = {ROOT / "migrations" / "env.py", ROOT / "migrations" / "versions"}
HEAVY = ["torch", "sqlalchemy", "av"]  # what the index layer must not pull in
WORKERS = 2  # the suite runs on 2 shared cores


def module_names(package: str) -> list[str]:
    """Dotted names of every Python module in `package`'s folder, the package itself included."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if any(path == skipped or skipped in path.parents for skipped in NOT_IMPORTABLE):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def project_modules() -> list[str]:
    """The top-level modules (cli) and every module of PACKAGES."""
    return [path.stem for path in sorted(ROOT.glob("*.py"))] + [name for package in PACKAGES
                                                                 for name in module_names(package)]


def import_alone(module: str) -> tuple[str, list[str] | str]:
    """Import `module` in a fresh interpreter: (module, the HEAVY modules it loaded) or (module, its error)."""
    code = f"import importlib, json, sys; importlib.import_module({module!r}); " \
           f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return module, lines[-1] if lines else f"exit code {result.returncode}"
    return module, json.loads(result.stdout.strip().splitlines()[-1])


def import_each(modules: list[str]) -> dict[str, list[str] | str]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(import_alone, modules))


def test_modules_are_found():
    names = project_modules()
    assert {"cli", "retrieval", "retrieval.library", "index", "index.vector_index", "migrations"} <= set(names)
    assert "migrations.env" not in names and not any(name.startswith("migrations.versions") for name in names)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """No import cycle: whichever module a program imports first, it loads."""
    failed = {module: outcome for module, outcome in import_each(project_modules()).items()
              if isinstance(outcome, str)}
    assert not failed, "\n".join(f"{module}: {error}" for module, error in sorted(failed.items()))


def test_the_index_layer_imports_without_torch_sqlalchemy_or_av():
    """index/ needs only the standard library, NumPy and FAISS."""
    loaded = {module: outcome for module, outcome in import_each(module_names("index")).items() if outcome != []}
    assert not loaded, "\n".join(f"{module}: {outcome}" for module, outcome in sorted(loaded.items()))


#: Data flows one way: a module imports (at its top or inside a function) only modules of its own layer
#: or of the layers above it in this list. index/ is a layer of its own that imports nothing of retrieval.
LAYERS = [
    {"retrieval.errors", "retrieval.results", "retrieval.schema", "retrieval.windows", "retrieval.scoring",
     "retrieval.extras", "retrieval.exports", "retrieval.filters"},
    {"retrieval.search", "retrieval.preprocess", "retrieval.configs", "retrieval.audio", "retrieval.augment"},
    {"retrieval.features", "retrieval.pipeline", "retrieval.encoders"},
    {"retrieval.store", "retrieval.ingest", "retrieval.training"},
    {"retrieval.encoding", "retrieval.library_index", "retrieval.indexing", "retrieval.distributed",
     "retrieval.clustering", "retrieval.classifier", "retrieval.marks", "retrieval.references", "retrieval.projection",
     "retrieval.map_render"},
    {"retrieval.querying", "retrieval.duplicates"},
    {"retrieval.library"},
    {"retrieval", "retrieval.comparison", "retrieval.evaluation", "retrieval.web"},
    {"cli"},
]


def layer_of(module: str) -> int:
    """The layer of a module: its own entry, or the entry of the nearest package that holds it."""
    if module.startswith("index"):
        return -1
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        for number, layer in enumerate(LAYERS):
            if ".".join(parts[:end]) in layer:
                return number
    raise AssertionError(f"{module} is in no layer of tests/test_imports.py LAYERS; add it where it belongs")


def project_imports(module: str) -> set[str]:
    """The project modules that `module` imports anywhere in its source."""
    import ast

    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            submodules = {f"{base}.{alias.name}" for alias in node.names
                          if (ROOT / Path(*base.split("."), alias.name)).with_suffix(".py").exists()}
            found.update(submodules if submodules and len(submodules) == len(node.names) else submodules | {base})
    return {name for name in found if name.split(".")[0] in ("retrieval", "index", "cli")}


def test_imports_flow_one_way_through_the_layers():
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module in project_modules() if not module.startswith("migrations")
              for target in sorted(project_imports(module))
              if layer_of(target) > layer_of(module) and not (module.startswith("index") and target.startswith("index"))]
    assert not upward, "\n".join(upward)


def test_the_index_layer_imports_nothing_of_retrieval():
    assert not {target for module in module_names("index") for target in project_imports(module)
                if not target.startswith("index")}
