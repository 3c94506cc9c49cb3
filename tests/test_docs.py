"""Every command has help text and is documented in the README; ARCHITECTURE.md places every module."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

COMMANDS = [command.name or command.callback.__name__ for command in app.registered_commands] + [
    f"{group.name} {command.name or command.callback.__name__}" for group in app.registered_groups
    for command in group.typer_instance.registered_commands]
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_has_help_and_is_in_the_readme(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    assert f"soundalike {command}" in README


def test_quickstart_is_the_two_commands():
    quickstart = README.split("## Quickstart")[1].split("##")[0]
    assert "make demo" in quickstart and "make test" in quickstart


def test_architecture_names_every_module_of_retrieval():
    root = Path(__file__).resolve().parents[1]
    architecture = (root / "ARCHITECTURE.md").read_text()
    modules = {path.stem for path in (root / "retrieval").glob("*.py") if path.stem != "__init__"}
    missing = sorted(module for module in modules if f"`{module}`" not in architecture)
    assert not missing, f"ARCHITECTURE.md does not place: {', '.join(missing)}"
