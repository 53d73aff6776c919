"""The import graph runs one way (docs/architecture.md, "Layers"): every import of every product
module (at the top, inside functions, under TYPE_CHECKING, inside
``workflow.unsafe.imports_passed_through()``) names its own layer or one below it, and the API
never imports an activity module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The layers, from the bottom. A name stands for that module and every module under it (the most
# specific name wins); a module may import its own layer and those below it, never one above.
LAYERS = {
    "domain": ("domain",),
    "activities and stores": ("activities", "stores"),
    "workflows": ("workflows",),
    "the API and the worker": ("api", "worker", "treatyflow.config", "treatyflow.codec", "treatyflow.logging",
                               "treatyflow.client", "treatyflow.cases", "treatyflow.namespace",
                               "treatyflow.tracing"),
    "the web application": ("web",),
    "the CLI": ("treatyflow.cli", "treatyflow.demo", "treatyflow.importing", "treatyflow.samples", "treatyflow.devserver",
                "treatyflow.backup", "treatyflow.supervisor"),
}
# Beside the layers: what a name never imports although it is below it.
APART = {"api": ("activities", "the API reads the stores, never activity modules (those are the worker's)")}
NAMES = [(name, layer) for layer, names in enumerate(LAYERS.values()) for name in names]
FIRST_PARTY = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {p.stem for p in ROOT.glob("*.py")}


def layer_of(module: str) -> int | None:
    """The layer of the most specific name that is ``module`` or a package above it; a package whose
    modules are in several layers (``treatyflow``) is itself in the lowest of them."""
    found = [(len(name), layer) for name, layer in NAMES if module == name or module.startswith(name + ".")]
    if found:
        return max(found)[1]
    below = [layer for name, layer in NAMES if name.startswith(module + ".")]
    return min(below) if below else None


def named_as(module: str) -> str:
    """The name in LAYERS that ``module`` falls under (or the module itself), for messages."""
    return max((name for name, _ in NAMES if module == name or module.startswith(name + ".")), key=len,
               default=module)


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> list[Path]:
    tops = sorted({name.split(".")[0] for name, _ in NAMES})
    return sorted(f for top in tops for f in ((ROOT / top).rglob("*.py") if (ROOT / top).is_dir()
                                              else [ROOT / f"{top}.py"]))


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """Every first-party module ``tree`` imports, wherever the import statement is."""
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one step up per extra dot
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            # ``from workflows import search_attributes`` imports the module workflows.search_attributes
            targets += [f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base for alias in node.names]
    return [t for t in targets if t.split(".")[0] in FIRST_PARTY]


def back_edges(path: Path, source: str | None = None) -> list[str]:
    """One line for each import of ``path`` (its text, or ``source`` instead) from above its layer."""
    module, where = module_of(path), path.relative_to(ROOT).as_posix()
    own = layer_of(module)
    if own is None:
        return [f"{where} is in no layer: add it to LAYERS in tests/test_layers.py"]
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    allowed = ", ".join(name for name, layer in NAMES if layer <= own)
    problems = []
    for target in dict.fromkeys(imported(tree, module, path.name == "__init__.py")):
        layer = layer_of(target)
        if layer is None:
            problems.append(f"{where} imports {target}, which is in no layer (not product code?)")
        elif layer > own:
            problems.append(f"{where} imports {target}: {named_as(module)} may import only {allowed}")
        elif named_as(module) in APART and named_as(target) == APART[named_as(module)][0]:
            problems.append(f"{where} imports {target}: {APART[named_as(module)][1]}")
    return problems


def test_every_product_module_imports_only_its_own_layer_and_those_below():
    modules = product_modules()
    assert len(modules) > 40 and ROOT / "worker.py" in modules and ROOT / "stores" / "archive.py" in modules
    problems = [line for path in modules for line in back_edges(path)]
    assert not problems, "imports against the layers (docs/architecture.md):\n" + "\n".join(problems)


def test_a_back_edge_is_found_wherever_the_import_is():
    archive = ROOT / "activities" / "archive.py"
    assert back_edges(archive, "from treatyflow.codec import EncryptionCodec\n") == [
        "activities/archive.py imports treatyflow.codec: activities may import only domain, activities, stores"]
    inside = """
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from api import app

def later():
    import treatyflow.cli
    from treatyflow import devserver
    from domain.case import ArchivedCase
"""
    assert [line.split(":")[0] for line in back_edges(ROOT / "workflows" / "transfer.py", inside)] == [
        "workflows/transfer.py imports api.app", "workflows/transfer.py imports treatyflow.cli",
        "workflows/transfer.py imports treatyflow.devserver"]
    assert back_edges(ROOT / "api" / "app.py", "from activities.archive import open_archive\n") == [
        "api/app.py imports activities.archive: the API reads the stores, never activity modules (those are "
        "the worker's)"]
    assert back_edges(ROOT / "treatyflow" / "client.py", "from tests.factories import transfer_request\n") == [
        "treatyflow/client.py imports tests.factories, which is in no layer (not product code?)"]
    assert back_edges(ROOT / "treatyflow" / "new.py", "") == [
        "treatyflow/new.py is in no layer: add it to LAYERS in tests/test_layers.py"]
    assert layer_of("treatyflow") == layer_of("treatyflow.config") < layer_of("treatyflow.cli")
