"""No import cycles inside the package: each area is wired one way, and route modules are
imported by the application factory, never at the bottom of the module that owns the blueprint.

Only module-level imports count: an import inside a function (or under `TYPE_CHECKING`) runs
after every module has loaded, so it cannot leave a module half-initialised.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from referrals.main.context import NAVIGATION

PACKAGE = Path(__file__).resolve().parent.parent / "referrals"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, node: ast.stmt) -> list[str]:
    """Every module a top-level statement may import: the module named and, for `from X import
    name`, X.name in case the name is a submodule."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    return [source, *(f"{source}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {
            target
            for node in tree.body
            for target in _imported(module, path.name == "__init__.py", node)
        }
        graph[module] = {target for target in targets if target in files and target != module}
    return graph


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the whole package was read
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = import_graph()
    graph["referrals.extensions"] = graph["referrals.extensions"] | {"referrals.admin.views"}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a cycle through referrals.extensions went unnoticed")


def test_each_areas_blueprint_is_bp_in_its_package() -> None:
    """Blueprints are made in an area's `__init__` only, so a route module never owns one that
    another module must import it to reach."""
    made_elsewhere = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "Blueprint(" in path.read_text(encoding="utf-8")
    ]
    assert made_elsewhere == []


def test_the_menu_is_written_once_not_added_to_on_import() -> None:
    assert isinstance(NAVIGATION, tuple)
    adders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "add_navigation(" in path.read_text(encoding="utf-8")
    ]
    assert adders == []
