"""Issue 37, item 4: a layout that shows the architecture. Imports run one way through the layers
below (no circle, nothing imported from a higher layer, inside functions included), and no module
of the package is over 400 lines."""

import ast
import os
import pathlib

PACKAGE = pathlib.Path(__file__).parents[1] / "keras_nfnets"
MAX_LINES = 400

# Layers, lowest first: a module may import its own layer and those below (the longest prefix rules).
LAYERS = [
    ("keras_nfnets.names", 0), ("keras_nfnets.layer_options", 0), ("keras_nfnets.messages", 0),
    ("keras_nfnets._files", 0), ("keras_nfnets._lazy", 0), ("keras_nfnets._startup", 0), ("keras_nfnets._compat", 0),
    ("keras_nfnets.backend", 0), ("keras_nfnets.graph", 1), ("keras_nfnets.layers", 1), ("keras_nfnets.data", 2),
    ("keras_nfnets.models", 3), ("keras_nfnets.optimizers", 3), ("keras_nfnets.saving", 4), ("keras_nfnets.weights", 4),
    ("keras_nfnets.imagenet", 4), ("keras_nfnets.preprocessing", 5), ("keras_nfnets.applications", 5),
    ("keras_nfnets.export", 5), ("keras_nfnets.spp", 5), ("keras_nfnets.training", 6), ("keras_nfnets.model_sources", 7),
    ("keras_nfnets.kerashub", 8), ("keras_nfnets._registration", 9), ("keras_nfnets", 9), ("keras_nfnets.cli", 10),
]


def _modules():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(modules):
    """module -> the package modules it imports anywhere (``from package import submodule`` counts
    as the submodule; ``from keras_nfnets import __version__`` as nothing)."""
    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                imported = [a.name for a in node.names if not a.name.startswith("__")]
                subs = [f"{base}.{a}" for a in imported if f"{base}.{a}" in modules]
                targets.update(subs or ([base] if imported and base in modules else []))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        edges[name] = targets - {name}
    return edges


def _layer(module):
    return max((prefix for prefix, _ in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)


def test_imports_run_down_the_layers_without_a_circle():
    modules = _modules()
    edges = _imports(modules)
    upward = _upward(edges)
    assert not upward, f"imports up the layers: {upward}"
    state, path, circles = {}, [], []

    def visit(module):  # depth-first: a module met again while on the path closes a circle
        state[module] = "open"
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module)
    assert not circles, f"import circles: {circles}"


def _upward(edges):
    rank = dict(LAYERS)
    return [f"{m} -> {t}" for m, targets in edges.items() for t in targets if rank[_layer(t)] > rank[_layer(m)]]


def test_the_check_finds_an_upward_import_inside_a_function(tmp_path):
    """The check can fail: a backend module importing training inside a function is reported."""
    modules = _modules()
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from keras_nfnets.training.distribute import worker_role\n")
    modules["keras_nfnets.backend.fake"] = fake
    assert _upward(_imports(modules)) == ["keras_nfnets.backend.fake -> keras_nfnets.training.distribute"]


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(PACKAGE.parent)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_package_root_holds_the_public_api_and_its_machinery_only():
    """Command-line plumbing lives in cli/, developer tools (stubs, counts) in tools/."""
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert "cli.py" not in root and "launch.py" not in root and "_stubs.py" not in root, root
    assert os.path.isfile(PACKAGE.parent / "tools" / "write_stubs.py")
    assert os.path.isfile(PACKAGE.parent / "tools" / "write_counts.py")
