"""mgr's imports run one way: no cycles, and no module imports a layer above its own."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "import_graph", REPO / "tools" / "import_graph.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


tool = _tool()


def test_mgr_has_no_import_cycle():
    graph = tool.import_graph(REPO)
    assert "mgr.features" in graph and "mgr.datamodules.online" in graph
    assert tool.cycles(graph) == []


def test_mgr_imports_follow_the_layers():
    graph = tool.import_graph(REPO)
    assert tool.layer_violations(graph) == []
    # Every module is in a layer (a new top-level module must be placed in LAYERS).
    for module in graph:
        tool.layer_of(module)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # module level, absolute
        ({"mgr/a.py": "import mgr.b\n", "mgr/b.py": "from mgr import a\n"}, [["mgr.a", "mgr.b"]]),
        # inside a function, relative
        (
            {
                "mgr/p/__init__.py": "",
                "mgr/p/x.py": "def f():\n    from .y import g\n",
                "mgr/p/y.py": "from . import x\n",
            },
            [["mgr.p.x", "mgr.p.y"]],
        ),
        # through a package's re-export in __init__
        (
            {
                "mgr/q/__init__.py": "from .m import M\n",
                "mgr/q/m.py": "from mgr.r import R\n",
                "mgr/r.py": "def f():\n    from mgr.q import M\n",
            },
            [["mgr.q", "mgr.q.m", "mgr.r"]],
        ),
        # type-only imports never run: no cycle
        (
            {
                "mgr/s.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from mgr.t import T\n",
                "mgr/t.py": "from mgr.s import S\n",
            },
            [],
        ),
    ],
    ids=["module-level", "function-level-relative", "package-init", "type-checking"],
)
def test_the_tool_finds_cycles(tmp_path, files, expected):
    _write(tmp_path, {"mgr/__init__.py": "", **files})
    assert tool.cycles(tool.import_graph(tmp_path)) == expected


def test_the_tool_finds_a_layer_violation(tmp_path):
    _write(
        tmp_path,
        {
            "mgr/__init__.py": "",
            "mgr/data/__init__.py": "",
            "mgr/data/readers.py": "def f():\n    from mgr.features import g\n",
            "mgr/features.py": "",
        },
    )
    bad = tool.layer_violations(tool.import_graph(tmp_path))
    assert bad == ["mgr.data.readers (data) -> mgr.features (applications)"]
    assert tool.main(["--root", str(tmp_path)]) == 1
