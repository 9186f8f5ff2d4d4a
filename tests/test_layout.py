"""The package's layering, read from the code: no import cycles between its parts, inference without training."""

import ast
import subprocess
import sys
from pathlib import Path

import nin

PACKAGE = Path(nin.__file__).parent
# The one edge that points up, on purpose: `nin.models.nin_mnist(weights=...)` is torchvision's API, a
# facade whose body imports nin.pretrained when called (pretrained -> inference -> models underneath).
FACADE_EDGES = {("models", "pretrained")}


def _part(module: str) -> str:
    """nin.maps.figure -> maps; nin.files -> files (a top-level module is a part of its own)."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _imports() -> dict[str, set[str]]:
    """For every part of the package, the other parts its modules import (at any depth of the code)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("nin",) + path.relative_to(PACKAGE).with_suffix("").parts)
        part = _part(module.removesuffix(".__init__"))
        targets = graph.setdefault(part, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            targets.update(_part(n) for n in names if n.startswith("nin.") and _part(n) != part)
    return {part: {t for t in targets if (part, t) not in FACADE_EDGES} for part, targets in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_the_parts_of_the_package_import_each_other_without_cycles():
    graph = _imports()
    assert {"maps", "localization", "report", "train", "data", "files", "rundir"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_inference_loads_no_training_code():
    code = "import sys, nin.inference; print(sorted(m for m in sys.modules if m.startswith('nin.train')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_models_are_plain_torch_nn():
    """The architecture in nin.models uses public torch.nn only; the CPU kernels live in nin.fast (opt-in)."""
    for path in (PACKAGE / "models").glob("*.py"):
        assert "torch.ops" not in path.read_text(), path


def test_functions_short_signatures_narrow_modules_small():
    """A function reads on one screen (60 lines at most), takes at most 8 parameters (an options object
    instead), and a module stays under 400 lines."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            found.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                count = len(names) - (names[:1] in (["self"], ["cls"])) + bool(args.vararg) + bool(args.kwarg)
                if node.end_lineno - node.lineno + 1 > 60 or count > 8:
                    found.append(f"{path.name}:{node.lineno} {node.name}")
    assert not found, found
