"""The house is one-way: each package imports only the layers below it (type-only and function-level
imports included), and the pool calls the compactor only through the service it was handed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autoglm_lab as al
from autoglm_lab.pool import set_default_compaction_service

ROOT = Path(al.__file__).parent

# widget > tuning | cli | report | torchsnap > workload > compactor > pool; history reads only the pool
ALLOWED: dict[str, set[str]] = {
    "pool": set(),
    "history": {"pool"},
    "compactor": {"pool"},
    "workload": {"pool", "compactor"},
    "report": {"pool", "compactor", "workload", "history"},
    "tuning": {"pool", "compactor", "workload", "report", "history"},
    "torchsnap": {"pool", "compactor", "workload", "tuning", "report", "history"},
    "cli": {"pool", "compactor", "workload", "tuning", "report", "torchsnap", "history", "__init__"},
    "widget": {"pool", "compactor", "workload", "tuning", "report", "torchsnap", "history"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _imported_layers(path: Path) -> set[str]:
    rel = path.relative_to(ROOT)
    package = list(rel.parts[:-1])  # the module's package, relative to autoglm_lab
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names if a.name.startswith("autoglm_lab.")]
            out |= {n[1] for n in names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("autoglm_lab"):
                    parts = node.module.split(".")[1:]
                    out.add(parts[0] if parts else "__init__")
                continue
            base = package[: len(package) - (node.level - 1)]
            full = base + (node.module.split(".") if node.module else [])
            if full:
                out.add(full[0].removesuffix(".py"))
            else:  # from . import x (at the top level): x is a layer, or a name of the package itself
                out |= {a.name if a.name in ALLOWED else "__init__" for a in node.names}
    return out


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if _layer(p) in ALLOWED)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages | modules <= set(ALLOWED), sorted((packages | modules) - set(ALLOWED))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_only(path: Path) -> None:
    layer = _layer(path)
    bad = _imported_layers(path) - ALLOWED[layer] - {layer}
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports {sorted(bad)} from above it"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # the check itself can fail: a pool module importing the compactor under TYPE_CHECKING is caught
    fake = ROOT / "pool" / "_fake_for_test.py"
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..compactor import Plan\n")
    try:
        assert _imported_layers(fake) == {"compactor"}
    finally:
        fake.unlink()


class _Recorder:
    """A compaction service that records how the pool calls it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_alloc_failure(self, pool: al.PagedPool, pages: int) -> bool:
        self.calls.append(("on_alloc_failure", pages))
        return False

    def tick(self, pool: al.PagedPool, now: float) -> None:
        self.calls.append(("tick", now))

    def compact(self, pool: al.PagedPool, strategy: str, *, budget_bytes: object, num_pages: object) -> str:
        self.calls.append(("compact", strategy))
        return "report"

    def reset(self) -> None:
        self.calls.append(("reset", None))


def _pool(**kw: object) -> al.PagedPool:
    return al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=4 * 4096, max_size=4 * 4096,
                                      device="cpu"), **kw)


def test_the_pool_calls_the_service_it_was_handed() -> None:
    service = _Recorder()
    pool = _pool(compaction_service=service)
    assert pool.compaction_service is service
    blocks = [pool.alloc_bytes(4096) for _ in range(4)]
    with pytest.raises(al.PoolExhausted):
        pool.alloc_bytes(4096)
    assert pool.tick(5.0) is None and pool.compact("sliding") == "report"
    assert service.calls == [("on_alloc_failure", 1), ("tick", 5.0), ("compact", "sliding")]
    assert pool.stats().failed_allocations == 1 and len(blocks) == 4


def test_a_pool_without_a_service_fails_plainly() -> None:
    from autoglm_lab.compactor import Compactor

    set_default_compaction_service(None)
    try:
        pool = _pool()
    finally:
        set_default_compaction_service(Compactor)
    assert pool.compaction_service is None and pool.tick() is None
    with pytest.raises(RuntimeError, match="no compaction service"):
        pool.compact()
    assert isinstance(_pool().compaction_service, Compactor)  # the default is back


def _private_imports(path: Path) -> list[str]:
    """Imports of another package's private modules or names (``from ..pool._impl import x``,
    ``from ..pool import _impl``)."""
    rel = path.relative_to(ROOT)
    package = list(rel.parts[:-1])
    own = _layer(path)
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        full = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        if not full or full[0] == own:
            continue
        names = [a.name for a in node.names]
        if any(p.startswith("_") for p in full[1:]) or any(n.startswith("_") and not n.startswith("__") for n in names):
            bad.append(f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}")
    return bad


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_imports_another_ones_private_parts(path: Path) -> None:
    assert not _private_imports(path), f"{path.relative_to(ROOT)}: {_private_imports(path)}"
