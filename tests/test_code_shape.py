"""The code's shape as issue 17 set it: provider knowledge only in provider folders, no
function over 80 lines, no import cycle, every provider folder complete."""

from __future__ import annotations

import ast
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from sources import provider_names, providers

REPO = Path(__file__).parents[1]
MAX_FUNCTION_LINES = 80
# the three polled providers' names, which only their folders, tests and benchmarks may hold
PROVIDER_WORDS = re.compile(r"lobstr|cleartax|upload_post", re.IGNORECASE)


def python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).exists()]


def outside(*folders: str) -> list[Path]:
    return [p for p in python_files()
            if not any(p.relative_to(REPO).parts[0] == f for f in folders)]


def test_no_module_outside_provider_folders_names_a_polled_provider():
    allowed = {REPO / "sources" / name for name in provider_names()}
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
             for p in outside("tests", "bench") if not any(a in p.parents for a in allowed)
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if PROVIDER_WORDS.search(line)]
    assert found == []


def test_the_engine_names_no_provider():
    """sources/common and the simulator's server serve any provider: none is named there."""
    words = re.compile("|".join([*provider_names(), "high ?level", "upload-post"]), re.IGNORECASE)
    engine = [p for p in python_files() if p.parent == REPO / "sources" / "common"
              or p.parent == REPO / "simulator"]
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in engine
             for n, line in enumerate(p.read_text().splitlines(), 1) if words.search(line)]
    assert engine and found == []


# SQL that spells a concept of the views (a job's day, in flight, its resolved status, the
# success rate): written once, in pipelines/analytics/concepts.py
CONCEPT_SQL = re.compile(r"AT TIME ZONE 'UTC'\)|untracked_at IS NULL|status_override, \w+\.status"
                         r"|NULLIF\(SUM|IN \('succeeded'")


def test_the_views_concepts_have_one_home():
    home = REPO / "pipelines" / "analytics" / "concepts.py"
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
             for p in outside("tests", "bench") if p != home
             for n, line in enumerate(p.read_text().splitlines(), 1) if CONCEPT_SQL.search(line)]
    assert home.exists() and found == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in outside("tests"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} {lines}")
    assert long == []


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files: list[Path] | None = None, root: Path = REPO) -> dict[str, set[str]]:
    """Project module -> project modules it imports, at module level or inside functions."""
    modules = {_module_name(p, root): p for p in (outside("tests") if files is None else files)}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                # `from package import submodule` depends on the submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    cycles: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle():
    graph = import_graph()
    # function-level imports are read
    assert "pipelines.commands.demo" in graph["pipelines.commands.cli"]
    assert cycles_in(graph) == []


def test_the_import_graph_sees_a_cycle(tmp_path):
    """The cycle check can fail: two modules importing each other (one inside a function,
    as the CLI and the demo once did) are found."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "a.py").write_text("from pipelines.b import x\n")
    (folder / "b.py").write_text("def x():\n    from pipelines.a import y\n")
    graph = import_graph([folder / "a.py", folder / "b.py"], tmp_path)
    assert graph == {"pipelines.a": {"pipelines.b"}, "pipelines.b": {"pipelines.a"}}
    assert cycles_in(graph) == ["pipelines.a -> pipelines.b -> pipelines.a"]


@pytest.mark.parametrize("name", provider_names())
def test_every_provider_folder_is_complete(name):
    """Its declaration loads, its simulator fixture and test file exist, and the registry
    found it without importing anything else."""
    package = providers()[name]
    assert package.provider.name == name
    fixture = package.fixture_class()()
    assert fixture.name == name and fixture.token
    assert (REPO / "tests" / "providers" / f"test_{name}.py").exists()


# pipelines/ in layers: a module imports its own layer or those below it, never one above
LAYERS = {"commands": 3, "run": 2, "destinations": 1, "analytics": 1, "common": 0}


def test_pipelines_layers_import_only_downwards():
    graph = import_graph()
    packages = {p.name for p in (REPO / "pipelines").iterdir() if p.is_dir()
                and (p / "__init__.py").exists()}
    assert packages == set(LAYERS)
    assert not [p.name for p in (REPO / "pipelines").glob("*.py")
                if p.name not in ("__init__.py", "__main__.py")]  # every module in a layer
    upward = [f"{module} -> {dependency}" for module, dependencies in sorted(graph.items())
              if module.startswith("pipelines.") and module.count(".") >= 2
              for dependency in sorted(dependencies)
              if dependency.startswith("pipelines.") and dependency.count(".") >= 2
              and LAYERS[dependency.split(".")[1]] > LAYERS[module.split(".")[1]]]
    assert upward == []
