"""Architecture rules for the core package `pipeline/`, checked statically (never imported)."""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator, Mapping
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "pipeline"
MAX_TOP_LEVEL_MODULES = 10
MAX_FUNCTION_LINES = 80
TASK_KINDS = {"language_model", "classification"}

Graph = Mapping[str, Mapping[str, int] | set[str]]


def python_files(root: Path) -> list[Path]:
    """Every `.py` file under `root`, sorted."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def shown(path: Path, root: Path) -> str:
    """`path` as written in failure messages: relative to the package's parent."""
    return path.relative_to(root.parent).as_posix()


def module_name(path: Path, root: Path) -> str:
    """`root/a/b.py` -> `pipeline.a.b`; `root/a/__init__.py` -> `pipeline.a`."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, in functions too, except those under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch does run
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _known_prefix(name: str, known: set[str]) -> str | None:
    """The longest dotted prefix of `name` that is a module in `known`, if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in known:
            return candidate
    return None


def _from_base(node: ast.ImportFrom, package: str) -> str | None:
    """The absolute module named by `from <base> import ...` (relative ones resolved)."""
    if not node.level:
        return node.module
    parts = package.split(".")
    if node.level > len(parts):
        return None  # beyond the top-level package
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> dict[str, int]:
    """The modules of `known` that `module` explicitly imports at run time -> first line.

    Implicit imports of parent packages are not edges; nor is a module importing itself.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _runtime_imports(ast.parse(source)):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_known_prefix(alias.name, known) for alias in node.names]
        elif (base := _from_base(node, package)) is not None:
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in known else _known_prefix(base, known))
        for target in targets:
            if target is not None and target != module:
                found[target] = min(found.get(target, node.lineno), node.lineno)
    return found


def build_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module -> line of its first import}, for every module under `root`."""
    files = {module_name(path, root): path for path in python_files(root)}
    known = set(files)
    return {
        name: imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known)
        for name, path in files.items()
    }


def find_cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (iterative Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def enter(node: str) -> tuple[str, Iterator[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        return node, iter(sorted(graph.get(node, ())))

    for start in sorted(graph):
        if start in index:
            continue
        work = [enter(start)]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    work.append(enter(child))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def cycle_path(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, e.g. `[a, b, a]` (BFS)."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for child in sorted(graph.get(node, ())):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in previous:
                previous[child] = node
                queue.append(child)
    return [*component, start]  # not reached for a real component


def describe_cycle(graph: Graph, component: list[str]) -> str:
    """`a -> b -> a`, where each import is (when known), and the whole component if larger."""
    path = cycle_path(graph, component)
    text = " -> ".join(path)
    via = [f"{a}:{graph[a][b]}" for a, b in pairwise(path) if isinstance(graph[a], Mapping)]
    if via:
        text += f"\n      (import lines: {', '.join(via)})"
    if len(component) > len(path) - 1:
        text += f"\n      component of {len(component)}: {', '.join(component)}"
    return text


def test_no_import_cycle() -> None:
    graph = build_graph(ROOT)
    cycles = [describe_cycle(graph, component) for component in find_cycles(graph)]
    assert not cycles, f"{len(cycles)} import cycle(s) in pipeline/:\n  " + "\n  ".join(cycles)


def task_kind_branches(source: str) -> list[int]:
    """Lines of code (not comments or strings) that read a task's kind: ``task.type``,
    ``task.get("type")``, or a comparison with a kind's name (``== "language_model"``)."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)
    ]
    hits = []
    for i, token in enumerate(tokens):
        after = [t.string for t in tokens[i + 1 : i + 5]]
        if token.string == "task" and (
            after[:2] == [".", "type"] or after[:3] == [".", "get", "("] and after[3] == '"type"'
        ):
            hits.append(token.start[0])
        if token.type == tokenize.STRING and token.string.strip("'\"") in TASK_KINDS:
            around = {tokens[i - 1].string, *after[:1]}
            if around & {"==", "!="}:
                hits.append(token.start[0])
    return hits


def test_no_task_kind_branch_outside_tasks() -> None:
    hits = [
        f"{shown(path, ROOT)}:{number}: {source.splitlines()[number - 1].strip()}"
        for path in python_files(ROOT)
        if "tasks" not in path.relative_to(ROOT).parts[:1]
        for source in [path.read_text(encoding="utf-8")]
        for number in task_kind_branches(source)
    ]
    assert not hits, "Branches on the task kind belong in pipeline/tasks/:\n  " + "\n  ".join(hits)


def test_the_task_kind_check_sees_code_not_comments() -> None:
    source = (
        "# task.type in a comment\n"
        "help = \"task.type == 'classification'\"\n"
        "if task.type == 'language_model':\n"
        "    pass\n"
        'kind = task.get("type")\n'
        'same = "classification" != other\n'
    )
    assert task_kind_branches(source) == [3, 3, 5, 6]


def test_top_level_modules_at_most_ten() -> None:
    modules = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, (
        f"{len(modules)} modules directly in pipeline/ (at most {MAX_TOP_LEVEL_MODULES}): "
        + ", ".join(modules)
    )


def test_no_function_over_80_lines() -> None:
    long = [
        f"{shown(path, ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for path in python_files(ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not long, f"Functions over {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(long)


def test_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert find_cycles(graph) == [["a", "b"]]
    assert describe_cycle(graph, ["a", "b"]) == "a -> b -> a"
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_import_resolver_sees_lazy_relative_and_skips_type_checking() -> None:
    known = {"pipeline", "pipeline.a", "pipeline.b", "pipeline.pkg", "pipeline.pkg.c"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import torch\n"
        "if TYPE_CHECKING:\n"
        "    from pipeline import a\n"
        "def f():\n"
        "    from pipeline import b\n"
        "    from .pkg import c, not_a_module\n"
        "    from . import some_name\n"
    )
    found = imports_of(source, "pipeline.x", is_package=False, known=known)
    assert found == {"pipeline.b": 6, "pipeline.pkg.c": 7, "pipeline.pkg": 7, "pipeline": 8}
    assert imports_of("from .. import a\n", "pipeline.pkg.c", False, known) == {"pipeline.a": 1}
