"""The sans-IO law: the engine packages import nothing that does I/O."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
FORBIDDEN = {
    "asyncio",
    "io",
    "mmap",
    "multiprocessing",
    "os",
    "pathlib",
    "select",
    "selectors",
    "shutil",
    "signal",
    "socket",
    "socketserver",
    "ssl",
    "subprocess",
    "sys",
    "tempfile",
    "threading",
    "time",
    "trio",
    "anyio",
}


def _imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"__import__", "open", "exec", "eval"}
        ):
            roots.add(node.func.id)
    return roots


@pytest.mark.parametrize("package", ["sansio_smtp", "minger"])
def test_package_imports_no_io_module(package: str) -> None:
    """No module of a sans-IO package imports an I/O module or calls open()."""
    files = sorted((SRC / package).rglob("*.py"))
    assert files
    for path in files:
        bad = _imported_roots(path) & (FORBIDDEN | {"__import__", "open", "exec", "eval"})
        assert not bad, f"{path.relative_to(SRC)} imports or calls {sorted(bad)}"
