import ast
from pathlib import Path

import mgr

PKG = Path(mgr.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_data_and_backbones_never_import_lightning():
    files = [*(PKG / "data").rglob("*.py"), *(PKG / "models" / "backbones").rglob("*.py")]
    assert files
    for f in files:
        bad = {m for m in _imports(f) if m.split(".")[0] in ("lightning", "pytorch_lightning")}
        assert not bad, f"{f.relative_to(PKG)} imports {bad}"


def test_public_api():
    assert mgr.__version__
    for name in mgr.__all__:
        assert hasattr(mgr, name), name
    assert issubclass(mgr.STCNN, mgr.Recognizer)
    assert issubclass(mgr.IMiGUEDataModule, mgr.MicroGestureDataModule)
