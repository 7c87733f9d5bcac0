"""The house rules, read from the code itself (every import statement, also those inside functions):

- the library below the stages (physics, world, data, models, diffusion, training -- the engine included --,
  eval, retrieval, inference, and the root modules) never imports ``physdiff.stages``, the launcher, the
  command line or the sweeps; the stages never import the launcher, the command line or the sweeps;
- no import cycle among the modules of ``physdiff/`` and ``cluster/``;
- only ``physdiff/fileio.py`` publishes files by renaming a temporary one;
- only ``physdiff/logs.py`` draws progress bars or configures logging.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY_LAYERS = ("physdiff.launch", "physdiff.cli", "physdiff.sweeps", "physdiff.__main__")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    files = sorted((REPO / "physdiff").rglob("*.py")) + sorted((REPO / "cluster").glob("*.py"))
    return {_module_name(p): p for p in files}


def _imports(path: Path, name: str) -> set[str]:
    """Every module a file imports (absolute names; relative imports resolved against the file's package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        graph[name] = {m for m in _imports(path, name) if m in mods and m != name}
    return graph


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_library_never_imports_the_stages_or_the_entry_points() -> None:
    graph = _graph()
    bad = []
    for mod, deps in graph.items():
        if not mod.startswith("physdiff") or _in(mod, ENTRY_LAYERS):
            continue
        is_stage = _in(mod, ("physdiff.stages",))
        for dep in deps:
            if _in(dep, ENTRY_LAYERS) or (not is_stage and _in(dep, ("physdiff.stages",))):
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports that run backwards across the layers:\n" + "\n".join(sorted(bad))
    # The check sees real edges: the launcher does import the stages, the stages the engine.
    assert "physdiff.stages" in graph["physdiff.launch.cli"] or any(d.startswith("physdiff.stages") for d in graph["physdiff.launch.cli"])
    assert any(d.startswith("physdiff.training") for d in graph["physdiff.stages"])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own submodules is not a cycle of concepts; leave those edges out.
    trimmed = {m: {d for d in deps if not (d.startswith(m + ".") or m.startswith(d + "."))} for m, deps in graph.items()}
    cycles = _cycles(trimmed)
    assert not cycles, "modules that import each other in a loop:\n" + "\n".join(" <-> ".join(c) for c in cycles)
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the detector itself works


def _rename_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            if (owner in ("os", "shutil") and f.attr in ("replace", "rename", "renames", "move")) or (
                    f.attr in ("replace", "rename") and len(node.args) == 1 and not node.keywords):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .{f.attr}()")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ".tmp" in node.value and id(node) not in docs:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    return found


def test_only_fileio_renames_temporary_files() -> None:
    files = [p for d in ("physdiff", "cluster", "shards", "sweeps", "bench") for p in sorted((REPO / d).rglob("*.py"))]
    bad = [hit for p in files if p != REPO / "physdiff" / "fileio.py" for hit in _rename_calls(p)]
    assert not bad, "hand-written temporary-name-then-rename outside physdiff/fileio.py:\n" + "\n".join(bad)
    assert _rename_calls(REPO / "physdiff" / "fileio.py")  # the scan recognises the one that is allowed


def _logging_setup_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "basicConfig", "addHandler"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.func.attr}()")
    return found


def test_only_physdiff_logs_draws_bars_or_configures_logging() -> None:
    """Progress goes through physdiff.logs (a bar on a terminal, short lines in a file); library code only logs."""
    logs = REPO / "physdiff" / "logs.py"
    tqdm = [f"{p.relative_to(REPO)}" for name, p in _modules().items()
            if p != logs and any(m == "tqdm" or m.startswith("tqdm.") for m in _imports(p, name))]
    assert not tqdm, "tqdm used directly (a bar that floods a SLURM log):\n" + "\n".join(tqdm)
    setup = [hit for p in sorted((REPO / "physdiff").rglob("*.py")) if p != logs for hit in _logging_setup_calls(p)]
    assert not setup, "logging configured outside physdiff.logs.setup_logging:\n" + "\n".join(setup)
    assert _logging_setup_calls(logs)  # the scan recognises the one that is allowed
