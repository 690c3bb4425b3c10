"""The layout's rules (docs/architecture.md), checked on the source:

- no import loop anywhere in ``crimecast``, ``training``, ``serving`` and ``monitoring``,
  counting imports inside functions too;
- ``crimecast`` imports none of the three apps, except its CLI (the composition root);
- the three apps never import each other;
- every DVC stage's artifact deps and outs are exactly what its module declares it reads
  and writes, and every out is read by a later stage or is a documented end product.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from crimecast.contracts import ARTIFACTS, END_PRODUCTS

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("crimecast", "training", "serving", "monitoring")
APPS = ("training", "serving", "monitoring")


def module_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """``{module: {imported project modules}}`` for every ``.py`` file under ``root``'s
    ``packages``, from every ``import``/``from ... import`` statement (function bodies
    included). ``from pkg import name`` counts as importing ``pkg.name`` when that is a
    module, else ``pkg``."""
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a non-module name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layering: the library reaching into an app (outside its
    CLI), or one app importing another."""
    out = []
    for module, deps in sorted(graph.items()):
        top = module.split(".")[0]
        for dep in sorted(deps):
            dep_top = dep.split(".")[0]
            if top == "crimecast" and dep_top in APPS and not module.startswith("crimecast.cli"):
                out.append(f"{module} imports {dep} (only crimecast.cli may wire the apps)")
            if top in APPS and dep_top in APPS and dep_top != top:
                out.append(f"{module} imports {dep} (the apps never import each other)")
    return out


def test_the_project_has_no_import_cycle() -> None:
    cycles = import_cycles(module_imports(REPO))
    assert cycles == [], f"import cycles: {cycles}"


def test_library_and_apps_keep_their_layers() -> None:
    assert layer_violations(module_imports(REPO)) == []


def test_the_checker_finds_a_loop_hidden_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "crimecast"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text("def promote():\n    from crimecast import tracking\n")
    (package / "tracking.py").write_text("from crimecast.registry import promote\n")
    (package / "cli.py").write_text("import serving.service\n")
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "__init__.py").write_text("")
    (tmp_path / "serving" / "service.py").write_text("import monitoring.report\n")
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "__init__.py").write_text("")
    (tmp_path / "monitoring" / "report.py").write_text("import crimecast.registry\n")
    graph = module_imports(tmp_path, ("crimecast", "serving", "monitoring"))
    assert import_cycles(graph) == [["crimecast.registry", "crimecast.tracking"]]
    assert layer_violations(graph) == [
        "serving.service imports monitoring.report (the apps never import each other)"]
    (package / "tracking.py").write_text("import serving.service\n")
    graph = module_imports(tmp_path, ("crimecast", "serving", "monitoring"))
    assert "crimecast.tracking imports serving.service (only crimecast.cli may wire the apps)" \
        in layer_violations(graph)


# ----------------------------------------------------------------------- DVC stages

def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _artifact_names(paths: list) -> set[str]:
    """ARTIFACTS attribute names of the artifacts/ paths among a stage's deps or outs."""
    by_path = {getattr(ARTIFACTS, name).name: name for name in dir(ARTIFACTS)
               if not name.startswith("_") and isinstance(getattr(type(ARTIFACTS), name, None),
                                                          property)}
    names = set()
    for entry in paths:
        path = next(iter(entry)) if isinstance(entry, dict) else entry
        if path.startswith("artifacts/"):
            names.add(by_path[Path(path).name])
    return names


@pytest.mark.parametrize("stage", list(_stages()))
def test_each_stage_declares_exactly_the_artifacts_dvc_tracks(stage: str) -> None:
    spec = _stages()[stage]
    module = importlib.import_module(f"training.{stage}")
    assert spec["cmd"] == f"python -m training.{stage}"
    assert _artifact_names(spec.get("deps", [])) == set(module.READS)
    assert _artifact_names(spec.get("outs", []) + spec.get("metrics", [])) == set(module.WRITES)
    assert f"training/{stage}.py" in spec["deps"], "a stage depends on its own code"


def test_every_output_is_read_later_or_is_an_end_product() -> None:
    order = list(_stages())
    for position, stage in enumerate(order):
        writes = importlib.import_module(f"training.{stage}").WRITES
        later_reads = {name for later in order[position + 1:]
                       for name in importlib.import_module(f"training.{later}").READS}
        for artifact in writes:
            assert artifact in later_reads or artifact in END_PRODUCTS, (
                f"stage {stage} writes {artifact}, which no later stage reads and which is "
                "not listed in crimecast.contracts.END_PRODUCTS")
    for product in END_PRODUCTS:
        assert any(product in importlib.import_module(f"training.{s}").WRITES for s in order)


def test_registered_models_keep_the_pyfunc_import_path() -> None:
    # MLflow cloudpickles the pyfunc wrapper by reference: every version registered so far
    # stores "crimecast.pyfunc.CrimecastModel". Moving the class would break loading them.
    from crimecast.pyfunc import CrimecastModel

    assert f"{CrimecastModel.__module__}.{CrimecastModel.__qualname__}" == \
        "crimecast.pyfunc.CrimecastModel"
