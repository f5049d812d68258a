"""Imports follow the data flow: no module under src/rewardsmith imports a stage that
docs/architecture.md ("Import rules") does not allow, including lazy imports inside functions.

The table is read from the document, so the rule and its description cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rewardsmith"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Imports known to run uphill, each with who removes it. The test fails while one is present that
# is not listed here, and also once a listed one is gone, so the entry is deleted with the import.
KNOWN_UPHILL_IMPORTS: dict[tuple[str, str], str] = {}


def allowed_imports() -> dict[str, set[str]]:
    """{stage: stages it may import} from the "Import rules" table of docs/architecture.md."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("## Import rules", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) >= 4 and cells[1].strip().startswith("`"):
            (stage,) = re.findall(r"`([\w.]+)`", cells[1])
            table[stage] = set(re.findall(r"`([\w.]+)`", cells[2]))
    return table


def stage_of(module: str) -> str | None:
    """"rewardsmith.train.loop" -> "train"; "rewardsmith" (the package itself) and non-rewardsmith -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "rewardsmith" and len(parts) > 1 else None


def imported_stages(path: Path) -> dict[str, int]:
    """{stage: first line} that the file at `path` imports, top level or not."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; the house uses absolute ones"
            # `from rewardsmith import metrics` imports the module metrics; `import __version__` the package.
            modules = [f"{node.module}.{alias.name}" if node.module == "rewardsmith" else node.module
                       for alias in node.names]
        else:
            continue
        for module in modules:
            stage = stage_of(module)
            if stage and ((PACKAGE / stage).is_dir() or (PACKAGE / f"{stage}.py").is_file()):
                found.setdefault(stage, node.lineno)
    return found


def uphill_imports() -> dict[tuple[str, str], str]:
    """{(stage, imported stage): "file:line"} for every import the table does not allow."""
    allowed = allowed_imports()
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        stage = relative.parts[0].removesuffix(".py")
        if stage == "__init__":
            continue  # the package: __version__ and RewardsmithError
        assert stage in allowed, f"{relative}: stage {stage!r} has no row in {ARCHITECTURE.name}'s Import rules"
        for target, line in imported_stages(path).items():
            if target != stage and target not in allowed[stage]:
                found.setdefault((stage, target), f"src/rewardsmith/{relative}:{line}")
    return found


def test_the_rules_table_is_read():
    table = allowed_imports()
    assert table["data"] == {"errors"} and table["errors"] == set()
    assert [stage for stage, allowed in table.items() if "cli" in allowed] == ["__main__"], "nothing imports cli"


def test_no_module_imports_a_higher_stage():
    found = uphill_imports()
    new = {edge: where for edge, where in found.items() if edge not in KNOWN_UPHILL_IMPORTS}
    assert not new, "imports against docs/architecture.md's Import rules: " + "; ".join(
        f"{where} ({a} imports {b})" for (a, b), where in sorted(new.items()))
    gone = set(KNOWN_UPHILL_IMPORTS) - set(found)
    assert not gone, f"{sorted(gone)} no longer imported: delete the entry from KNOWN_UPHILL_IMPORTS"


def test_the_checker_sees_lazy_and_package_imports(tmp_path):
    """A lazy import inside a function and `from rewardsmith import metrics` are both found."""
    module = tmp_path / "m.py"
    module.write_text("from rewardsmith import __version__, metrics\n\n"
                      "def f():\n    from rewardsmith.cli import main\n")
    assert imported_stages(module) == {"metrics": 1, "cli": 4}
