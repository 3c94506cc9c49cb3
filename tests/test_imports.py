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
