"""docs/architecture.md and the import-linter contracts in pyproject.toml name every
module of the package, so `lint-imports` checks all of them and the page stays true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "monitor"


def top_modules() -> set[str]:
    """The daemon's modules (the simulator is a package of its own)."""
    return {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def layered_modules() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers" and "containers" not in c]
    return {
        name.strip().removeprefix("monitor.")
        for layer in layers["layers"]
        for name in layer.split("|")
    }


def test_every_module_is_in_a_layer_of_the_import_contract() -> None:
    assert top_modules() - layered_modules() == set()
    assert layered_modules() - top_modules() == set()


def test_every_module_has_its_line_in_the_architecture_page() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| [a-z]+ \| `(\w+)` \|", page, flags=re.MULTILINE))
    assert top_modules() - listed == set()
    assert listed - top_modules() == set()


def test_every_simulator_module_is_layered() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c.get("containers") == ["monitor.simulator"]]
    layered = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    modules = {p.stem for p in (PACKAGE / "simulator").glob("*.py") if p.stem != "__init__"}
    assert modules == layered
