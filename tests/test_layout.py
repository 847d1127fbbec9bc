"""The package's import graph: no circle, and imports flow down only.

Read from the source with ``ast``: every import counts, also those inside
functions and those under ``if TYPE_CHECKING:`` (a type-only import is still
a dependency a reader follows).
"""

from __future__ import annotations

import ast
from pathlib import Path

import scnrestore

ROOT = Path(scnrestore.__file__).parent

# Top to bottom: a module may import its own layer's and lower layers' modules.
LAYERS = [
    {"__main__", "cli"},
    {"batch", "distributed"},
    {"training"},
    {"compare"},
    {"spec"},
    {"outsize"},
    {"chain"},
    {"api"},
    {"levels", "protocol"},
    {"engine", "checkpoint"},
    {"fused", "descriptor"},
    {"model", "runtime", "estimate", "metrics"},
    {"weights"},
    {"imageio"},
    {"files"},
    {"errors", "tasks", "architecture", "_version"},
]
RANK = {name: len(LAYERS) - i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = ["scnrestore", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported scnrestore module, whether it runs) for each import of ``name``."""
    tree = ast.parse(path.read_text())
    typing_only = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
            targets = subs or [mod]
        for t in targets:
            if t.split(".")[0] == "scnrestore" and t != name:
                found.append((t, id(node) not in typing_only))
    return found


def _graph() -> dict[str, list[tuple[str, bool]]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "scnrestore"


def test_every_module_has_a_layer():
    rooms = {_room(m) for m in _modules()} - {"scnrestore"}
    assert rooms <= RANK.keys(), sorted(rooms - RANK.keys())


def test_imports_flow_down_only():
    upward = []
    for module, imports in _graph().items():
        src = _room(module)
        for target, _ in imports:
            dst = _room(target)
            if dst == "scnrestore" or (src != "scnrestore" and RANK[dst] > RANK[src]):
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_nothing_imports_the_cli_and_the_library_never_imports_typer():
    for module, path in _modules().items():
        if _room(module) in ("cli", "__main__"):
            continue
        assert not [t for t, _ in _graph()[module] if _room(t) == "cli"], module
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("typer", "click")], module


def test_only_training_tools_import_the_training_package():
    """The product (api, engine, batch, ...) never needs the training code:
    only the package itself and the ``train`` and ``eval`` commands import it
    (scripts/ and benchmarks/ may too)."""
    allowed = {"scnrestore.cli.train", "scnrestore.cli.evaluate"}
    found = [
        f"{module} -> {target}"
        for module, imports in _graph().items()
        if _room(module) != "training" and module not in allowed
        for target, _ in imports
        if _room(target) == "training"
    ]
    assert not found, found


def test_the_library_draws_no_progress():
    """Only the command line imports rich (its bars come from cli/progress.py);
    the library calls back instead (a download's ``progress``, a batch's
    ``Reporter``)."""
    for module, path in _modules().items():
        if _room(module) in ("cli", "__main__"):
            continue
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "rich"], module


def test_no_circle():
    """No circle in the import graph, counting in-function and type-only imports."""
    graph = {m: [t for t, _ in imports] for m, imports in _graph().items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in graph.get(m, []):
            if state.get(t) == 1:
                raise AssertionError(" -> ".join([*path[path.index(t) :], t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_the_batch_knows_restorers_only_by_their_protocol():
    """batch/ imports no restorer nor level policy (api, chain, outsize, levels):
    what restores reaches it through scnrestore.protocol (run, models, start_notes)."""
    for module, imports in _graph().items():
        if _room(module) == "batch":
            bad = [t for t, _ in imports if _room(t) in ("api", "chain", "outsize", "levels")]
            assert not bad, (module, bad)


def test_nothing_is_set_on_a_loaded_network():
    """What a loaded model is (task, registry entry, source) travels in its
    ModelDescriptor: no code reads it back off the nn.Module."""
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        for attr in ("registry_entry", "trained_task"):
            assert f'getattr(model, "{attr}"' not in text, (path, attr)
            assert f".model.{attr}" not in text, (path, attr)


def test_functions_are_short():
    """No function in the package over 60 lines (its body) and none over 10
    parameters, but the CLI commands themselves, whose parameters are their
    options."""
    commands = {
        "upscale", "denoise", "dejpeg", "train", "evaluate_cmd", "main", "compare",
        "models_list", "models_info", "models_download", "models_verify", "models_path",
    }  # fmt: skip
    long, wide = [], []
    for path in sorted(ROOT.rglob("*.py")):
        where = path.relative_to(ROOT)
        for fn in _functions(ast.parse(path.read_text())):
            body = fn.body[1:] if ast.get_docstring(fn) else fn.body
            lines = (fn.end_lineno or 0) - body[0].lineno + 1 if body else 0
            if lines > 60:
                long.append(f"{where}:{fn.name} ({lines} lines)")
            n = len(fn.args.args) + len(fn.args.kwonlyargs) + len(fn.args.posonlyargs)
            if n > 10 and not (where.parts[0] == "cli" and fn.name in commands):
                wide.append(f"{where}:{fn.name} ({n} parameters)")
    assert not long, long
    assert not wide, wide
