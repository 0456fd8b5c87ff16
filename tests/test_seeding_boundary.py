"""Demo and generated data stay outside the domain: `referrals/seeding/` uses only the domain's
public names, and no domain module imports it (the command line loads it on demand)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "referrals"
SEEDING = PACKAGE / "seeding"


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every `from module import name` and `import module` in a file."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names)
    return found


def test_seeding_imports_no_private_name_from_the_domain():
    private = [
        f"{path.name}: from {module} import {name}"
        for path in sorted(SEEDING.glob("*.py"))
        for module, name in _imports(path)
        if module.startswith("referrals")
        and not module.startswith("referrals.seeding")
        and (name.startswith("_") or any(part.startswith("_") for part in module.split(".")))
    ]
    assert private == []


def test_no_domain_module_imports_the_seeding_package():
    importers = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if SEEDING not in path.parents and path.name != "cli.py"
        for module, _name in _imports(path)
        if module.startswith("referrals.seeding")
    ]
    assert importers == []
