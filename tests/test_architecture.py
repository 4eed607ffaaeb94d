"""The package's shape: imports run one way, in the order ARCHITECTURE.md gives, and nothing is
attached at run time.

The import graph is read with `ast` from the source files (kanarray/ and kernels/, the latter as
kanarray.kernels), so these tests need no third-party tool and import nothing they check.
"""
import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500  # "about 500": a module past this says at its top why it needs more
# kanarray modules imported only where they are used: kernels.cuda needs numba-cuda (the `cuda`
# extra), and the command line loads its commands (numba, and with it scipy) only once one runs,
# so that `kanarray --help` starts at once
LATE_IMPORTS = {("kanarray.core.backend", "kanarray.kernels.cuda"),
                ("kanarray.cli", "kanarray.cli.commands")}


def architecture_levels():
    """{part: level} from ARCHITECTURE.md's table of levels: a part is a package
    (kanarray.core) or a top-level module (kanarray.model); the kernels are level 0."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    levels = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if match:
            for part in re.findall(r"`([\w.]+)`", match[2]):
                levels[part] = int(match[1])
    return levels


def module_files():
    """{module name: path} of every kanarray module, the kernels under kanarray.kernels."""
    files = {}
    for folder, package in ((ROOT / "kanarray", "kanarray"), (ROOT / "kernels", "kanarray.kernels")):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            files[name.removesuffix(".__init__")] = path
    return files


def _resolve(module, path, node, names):
    """Kanarray modules named by one import statement of `module` (at `path`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("kanarray")]
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    if node.level:
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if not base.startswith("kanarray"):
        return []
    # `from .x import y`: y is a module when kanarray.x.y is one, else a name in kanarray.x
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]


def import_graph():
    """({module: set of kanarray modules it imports at module level},
        [(module, line, imported) for every kanarray import inside a function])."""
    files = module_files()
    graph, nested = {}, []
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set()
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _resolve(module, path, node, files)
                if id(node) in inside:
                    nested += [(module, node.lineno, t) for t in targets
                               if t in files and (module, t) not in LATE_IMPORTS]
                else:
                    graph[module].update(t for t in targets if t in files and t != module)
    return graph, nested


def part_of(module, levels):
    """The part of ARCHITECTURE.md's table a module belongs to (its longest listed prefix)."""
    candidates = [p for p in levels if module == p or module.startswith(p + ".")]
    return max(candidates, key=len) if candidates else None


def against_the_order(graph, levels):
    """[(importer, imported)] for every import that does not run down ARCHITECTURE.md's order:
    a part imports only parts of lower levels, and modules of its own part."""
    wrong = []
    for module, targets in graph.items():
        mine = part_of(module, levels)
        for target in sorted(targets):
            theirs = part_of(target, levels)
            if mine == theirs or target == "kanarray":
                continue
            if mine is None or theirs is None or levels[theirs] >= levels[mine]:
                wrong.append((module, target))
    return wrong


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [])
            if found:
                return found
    return None


def test_every_import_runs_down_the_order_architecture_md_gives():
    graph, _ = import_graph()
    levels = architecture_levels()
    unplaced = [m for m in graph if part_of(m, levels) is None and m != "kanarray"]
    assert unplaced == [], f"modules in no part of ARCHITECTURE.md's table: {unplaced}"
    assert against_the_order(graph, levels) == []


def test_the_order_check_finds_imports_that_run_up_or_sideways():
    levels = {"kanarray.kernels": 0, "kanarray.core": 2, "kanarray.training": 3,
              "kanarray.symbolic": 3, "kanarray.model": 4}
    graph = {"kanarray.core.layer": {"kanarray.kernels.cpu", "kanarray.core.grid"},
             "kanarray.training.loop": {"kanarray.core.network"},
             "kanarray.model": {"kanarray.training.loop"}}
    assert against_the_order(graph, levels) == []
    up = {"kanarray.core.layer": {"kanarray.training.loop"}}
    sideways = {"kanarray.training.loop": {"kanarray.symbolic.edges"}}
    assert against_the_order(up, levels) == [("kanarray.core.layer", "kanarray.training.loop")]
    assert against_the_order(sideways, levels) == [("kanarray.training.loop", "kanarray.symbolic.edges")]
    assert architecture_levels()["kanarray.kernels"] == 0


def test_kanarray_modules_import_each_other_without_a_cycle():
    graph, _ = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_kanarray_module_is_imported_inside_a_function():
    _, nested = import_graph()
    assert nested == [], f"function-level imports of kanarray modules: {nested}"


def test_the_checker_finds_cycles_and_nested_imports():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph, _ = import_graph()
    assert "kanarray.core.layer" in graph["kanarray.core.network"]  # relative imports are resolved
    assert "kanarray.kernels.cpu" in graph["kanarray.core.backend"]  # and the kernels mapping


def test_only_tests_import_the_oracle():
    """kernels/reference.py is the tests' oracle: production code takes what it shares with it
    (the base function and its codes) from kernels/common.py."""
    graph, nested = import_graph()
    importers = [m for m, targets in graph.items() if "kanarray.kernels.reference" in targets]
    importers += [m for m, _, target in nested if target == "kanarray.kernels.reference"]
    assert importers == []


def test_nothing_is_attached_at_run_time():
    """No module is written into sys.modules (reading it, to see whether a library is loaded,
    is fine)."""
    writes = re.compile(r"sys\.modules\s*(\[[^\]]*\]\s*=|\.(update|setdefault|__setitem__)\b)")
    for path in (ROOT / "kanarray").rglob("*.py"):
        assert not writes.search(path.read_text()), path
    assert writes.search('sys.modules["x"] = m') and not writes.search('sys.modules.get("x")')


def test_a_module_past_500_lines_says_why_at_its_top():
    """Size is for review to judge; a module that needs more than about 500 lines says why in
    the first lines of its docstring ("Why one module:")."""
    long = []
    for folder in (ROOT / "kanarray", ROOT / "kernels"):
        for path in folder.rglob("*.py"):
            text = path.read_text()
            if len(text.splitlines()) > MAX_MODULE_LINES and "Why one module:" not in text[:3000]:
                long.append(str(path.relative_to(ROOT)))
    assert long == []


@pytest.mark.slow
def test_kernels_import_from_a_wheel(tmp_path):
    """A wheel maps the top-level kernels/ folder to kanarray.kernels (pyproject package-dir)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(tmp_path / "dist"),
                          str(ROOT)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("kanarray-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, cwd=tmp_path)
    out = subprocess.run([sys.executable, "-c", "import kanarray.kernels.cpu as k; print(k.__file__)"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "site") in out.stdout
