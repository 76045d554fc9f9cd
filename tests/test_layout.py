"""A layout that shows the architecture. Imports run one way through the layers below (no circle,
nothing imported from a higher layer, inside functions included), no module of the package is
over 400 lines, private Keras / TensorFlow / keras-hub interfaces are used in _compat.py only, and
tests/ follows the package's folders."""

import ast
import os
import pathlib
import re

import keras
import pytest

PACKAGE = pathlib.Path(__file__).parents[1] / "keras_nfnets"
MAX_LINES = 400

# Layers, lowest first: a module may import its own layer and those below (the longest prefix rules).
LAYERS = [
    ("keras_nfnets.names", 0), ("keras_nfnets.layer_options", 0), ("keras_nfnets.messages", 0),
    ("keras_nfnets._files", 0), ("keras_nfnets._lazy", 0), ("keras_nfnets._startup", 0), ("keras_nfnets._compat", 0),
    ("keras_nfnets.backend", 0), ("keras_nfnets.graph", 1), ("keras_nfnets.layers", 1), ("keras_nfnets.data", 2),
    ("keras_nfnets.models", 3), ("keras_nfnets.registry", 3), ("keras_nfnets.optimizers", 3), ("keras_nfnets.saving", 4), ("keras_nfnets.weights", 4),
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


# --- the boundary: no private Keras / TensorFlow / keras-hub interface outside _compat.py (issue 45) ---
_FOREIGN = ("keras", "tensorflow", "keras_hub")
# Underscore names of other libraries that are their public API: os._exit ends a process without
# teardown (the interrupt's exit); torch._foreach_* are PyTorch's multi-tensor ops (torch's docs
# list them; not a Keras or TensorFlow object).
_ALLOWED = {("os", "_exit"), *(("torch", name) for name in ("_foreach_add_", "_foreach_mul_"))}


def _foreign_private_names(cls):
    """The underscore names that the Keras / TensorFlow / keras-hub classes in ``cls``'s MRO
    define or assign (``self._x = …``)."""
    import inspect
    import re

    bases = list(cls.__mro__)
    if issubclass(cls, keras.Model):  # a subclass built from inputs and outputs runs as Keras' Functional
        inputs = keras.Input((1,))
        bases += type(keras.Model(inputs, keras.layers.Identity()(inputs))).__mro__
    names = set()
    for base in bases:
        if (base.__module__ or "").split(".")[0] in _FOREIGN:
            names |= {n for n in vars(base) if n.startswith("_") and not n.startswith("__")}
            try:
                names |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*=", inspect.getsource(base)))
            except (OSError, TypeError):
                pass
    return names


def _private_uses(path, module):
    """``(line, what)`` of each private use in one module of the package: an import of ``keras.src``,
    ``keras_hub.src`` or ``tensorflow.python``; ``x._name`` or ``x.__internal__`` on anything but
    ``self``/``cls``; and in a class derived from Keras / TensorFlow / keras-hub, an attribute or
    method named like one of its bases' private ones (reading, overriding or shadowing it)."""
    import ast
    import inspect
    import re

    tree = ast.parse(path.read_text())
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]):
                if re.match(r"(keras|keras_hub)\.src\b|tensorflow\.python\b", name):
                    uses.append((node.lineno, f"import {name}"))
        elif isinstance(node, ast.Attribute) and (node.attr == "__internal__" or (
                node.attr.startswith("_") and not node.attr.startswith("__"))):
            value = node.value
            if isinstance(value, ast.Name) and (value.id in ("self", "cls") or (value.id, node.attr) in _ALLOWED):
                continue
            uses.append((node.lineno, ast.unparse(node)))
    for node in ast.walk(tree):
        cls = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
        if not inspect.isclass(cls):
            continue
        private = _foreign_private_names(cls)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                name = sub.attr
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub is not node:
                name = sub.name
            else:
                continue
            if name in private:
                uses.append((sub.lineno, f"{node.name}.{name} (private in its Keras / keras-hub base)"))
    return uses


def test_private_interfaces_are_used_in_compat_only():
    """Each Keras release can change a private interface silently; every use is in _compat.py,
    where each says why no public one does. Seen before this test: NFModel overrode Keras'
    _run_through_graph, tf_backend read the optimizer's accumulators and iteration counter, the
    keras-hub converter overrode _call_python (now each a named hook or helper in _compat)."""
    import importlib

    pytest.importorskip("keras_hub")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("_compat.py", "__main__.py"):
            continue
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = importlib.import_module(".".join(relative.parts).replace(".__init__", ""))
        found += [f"{relative}.py:{line}: {what}" for line, what in _private_uses(path, module)]
    assert not found, "private interfaces outside keras_nfnets/_compat.py:\n" + "\n".join(found)


def test_the_boundary_check_finds_each_kind_of_private_use(tmp_path):
    """The scanner above finds what it must (so that its silence means something)."""
    import types

    source = tmp_path / "sample.py"
    source.write_text("import keras\nfrom keras.src.models import functional\n"
                      "def f(optimizer):\n    return optimizer._iterations\n"
                      "class M(keras.Model):\n    def _run_through_graph(self, *a):\n        return self._tracker\n")
    module = types.ModuleType("sample")
    exec(compile(source.read_text(), str(source), "exec"), module.__dict__)
    found = {what for _, what in _private_uses(source, module)}
    assert {"import keras.src.models", "optimizer._iterations", "M._run_through_graph (private in its Keras / keras-hub "
            "base)", "M._tracker (private in its Keras / keras-hub base)"} <= found, found


# Top-level test modules whose subject is not a module of the package: the repository's files.
REPOSITORY_SUBJECTS = {"test_readme.py": "README.md", "test_notebooks.py": "notebooks", "test_layout.py": "keras_nfnets",
                       "test_package.py": "keras_nfnets/__init__.py"}


def test_the_tests_mirror_the_package():
    """tests/<folder>/ for every folder of the package (tests/tools/ for tools/); a module at the
    top of tests/ tests a top-level module of the package (test_registry.py: registry.py,
    test_compat.py: _compat.py) or a file of the repository; every test module says what it tests
    in a docstring, and none is named after the issue that added it."""
    root = PACKAGE.parent / "tests"
    package_folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    test_folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert test_folders - {"tools"} == package_folders, (test_folders, package_folders)
    for module in root.glob("test_*.py"):
        subject = module.name.removeprefix("test_")
        if module.name in REPOSITORY_SUBJECTS:
            assert (PACKAGE.parent / REPOSITORY_SUBJECTS[module.name]).exists(), module.name
        else:
            assert (PACKAGE / subject).exists() or (PACKAGE / f"_{subject}").exists(), \
                f"tests/{module.name} tests no top-level module of the package: move it to its folder's tests"
    for module in root.rglob("test_*.py"):
        tree = ast.parse(module.read_text())
        assert ast.get_docstring(tree), f"{module.relative_to(root)} has no docstring saying what it tests"
        assert not re.search(r"issue|_\d+(_|$)", module.stem), f"{module.name}: name it after what it tests"
