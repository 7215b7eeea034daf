"""The import layering of docs/architecture.md, read from the code with ``ast``.

Every module of hrgan_jax/, data_pipeline/ and configs/ sits on one floor; a module may
import its own floor and those below, never one above; step.py and inference.py, on the
same floor, import neither the other; no import circle anywhere (in-function imports
included); and an import of the project's own modules inside a function says on its line
which heavy or optional dependency it defers.
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Bottom to top.  A module is on the floor of the longest prefix listed for it.
FLOORS = (
    ("data", ("data_pipeline",)),
    ("models", ("hrgan_jax.models",)),
    ("pieces", ("hrgan_jax.images", "hrgan_jax.targets", "hrgan_jax.losses",
                "hrgan_jax.keypoints", "hrgan_jax.weights", "hrgan_jax.state",
                "hrgan_jax.config_checks", "hrgan_jax.parallel", "hrgan_jax.workdir",
                "hrgan_jax.checkpoints", "hrgan_jax.evaluation", "hrgan_jax.draw",
                "hrgan_jax.configs")),
    ("compute", ("hrgan_jax.step", "hrgan_jax.inference")),
    ("runtimes", ("hrgan_jax.loader", "hrgan_jax.onnx_export", "hrgan_jax.saved_model")),
    ("programs", ("hrgan_jax.trainer", "hrgan_jax.evaluation.runner", "hrgan_jax.predict",
                  "hrgan_jax.compare", "hrgan_jax.cli", "hrgan_jax.main", "hrgan_jax")),
)
# Floors whose modules must not import each other (training and inference side by side).
SIDE_BY_SIDE = ("compute",)
PROJECT = ("hrgan_jax", "data_pipeline")


def _modules() -> dict[str, pathlib.Path]:
    """Dotted name -> file, for every module of the project (configs/ is hrgan_jax.configs)."""
    out = {}
    for top in ("hrgan_jax", "data_pipeline", "configs"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[0] == "configs":
                parts = ["hrgan_jax"] + parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def floor_of(name: str) -> int:
    best, floor = -1, None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), index
    if floor is None:
        raise AssertionError(f"{name} is on no floor: add it to FLOORS here and to "
                             f"docs/architecture.md")
    return floor


def imports(name: str, path: pathlib.Path, modules) -> list[tuple[str, int, bool, str]]:
    """(imported project module, line, inside a function, the line's text) of a module."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                           for a in child.names]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules and target.split(".")[0] in PROJECT and target != name:
                    found.append((target, child.lineno, nested, lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return modules, {name: imports(name, path, modules) for name, path in modules.items()}


def test_every_module_imports_down_or_level(graph):
    modules, edges = graph
    names = [FLOORS[i][0] for i in range(len(FLOORS))]
    upward, side = [], []
    for name, found in edges.items():
        here = floor_of(name)
        for target, line, _, _ in found:
            there = floor_of(target)
            where = f"{modules[name].relative_to(ROOT)}:{line}: {name} ({names[here]}) imports {target}"
            if there > here:
                upward.append(f"{where} ({names[there]}, a floor up)")
            elif there == here and names[here] in SIDE_BY_SIDE:
                side.append(f"{where} (both on {names[here]}: side by side, neither imports the other)")
    assert not upward + side, "\n".join(upward + side)


def test_no_import_circles(graph):
    modules, edges = graph
    adjacent = {name: sorted({t for t, *_ in found}) for name, found in edges.items()}
    circles, state = [], {}

    def walk(node, path):
        state[node] = "open"
        for nxt in adjacent.get(node, ()):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(adjacent):
        if name not in state:
            walk(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_in_function_imports_say_what_they_defer(graph):
    modules, edges = graph
    bare = [f"{modules[name].relative_to(ROOT)}:{line}: {text.strip()}"
            for name, found in edges.items() for _, line, nested, text in found
            if nested and "#" not in text]
    assert not bare, ("imports of the project's modules inside functions, without a comment "
                      "naming the heavy or optional dependency they defer (else import at "
                      "the top):\n" + "\n".join(bare))


def test_the_floors_below_the_trainer_need_no_tensorflow():
    """The train step, the state, inference and the networks import without TensorFlow,
    orbax or clu: the GPU benchmarks run on machines that have none of them."""
    code = ("import sys; import hrgan_jax.step, hrgan_jax.inference, hrgan_jax.state, "
            "hrgan_jax.weights, hrgan_jax.configs.coco_w32_256x192; "
            "print(sorted(m for m in ('tensorflow', 'orbax', 'clu') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
