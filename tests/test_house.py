"""The house's rules, checked on the code: families as data, contracts declared once, no circles.

- every family record has every field (a new family that forgets one fails here);
- no library module compares family names: they ask the record (``sam_onnx/families.py``);
- no module imports another that imports it back, imports inside functions included;
- the page's copy of the contract (``demo_web/src/contract.json``) is the one Python generates.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from sam_onnx import families
from sam_onnx.families import FAMILIES, Family, family_of
from sam_onnx.web_contract import WEB_CONTRACT_PATH, web_contract_text

ROOT = Path(__file__).resolve().parent.parent
# where each importable package's files are (export/ and runtime/ install as sam_onnx.*)
PACKAGES = {
    "sam_onnx": ROOT / "sam_onnx",
    "sam_onnx.export": ROOT / "export",
    "sam_onnx.runtime": ROOT / "runtime",
}


def library_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "web" in path.relative_to(folder).parts[:-1] and package == "sam_onnx.runtime":
                continue  # the built page copied into a wheel, if any
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "sam_onnx" and parts[:1] in (["export"], ["runtime"]):
                continue
            found[name] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The library modules ``name`` imports anywhere in its file (functions, TYPE_CHECKING too)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            start = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*start, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in modules else module)
    return {t for t in targets if t in modules and t != name}


def test_every_family_record_has_every_field():
    fields = [f.name for f in dataclasses.fields(Family)]
    assert len(FAMILIES) >= 2
    for name, record in FAMILIES.items():
        assert record.name == name
        for field in fields:
            value = getattr(record, field)
            # None is a value only where the field's type admits it (clamp, stability rule)
            if value is None:
                assert "None" in str(Family.__dataclass_fields__[field].type), (name, field)
        assert record.features[0].name == "image_embeddings"
        assert record.decoder_inputs[-1] == "orig_im_size"
        assert set(record.official_variants) <= set(record.variants)
    with pytest.raises(TypeError):  # a record missing a field cannot be made
        Family(**{f: getattr(families.SAM, f) for f in fields[:-1]})


def test_family_of_names_the_input():
    assert family_of(None) is families.DEFAULT_FAMILY
    assert family_of("sam2") is families.SAM2
    with pytest.raises(ValueError, match=r"graph family: expected one of \('sam', 'sam2'\), got 'sam3'"):
        family_of("sam3", "graph family")


FAMILY_COMPARISON = re.compile(
    r"""(==|!=)\s*['"]sam2?['"]|['"]sam2?['"]\s*(==|!=)|family\s*(==|!=)|\bif sam2\b|\.family\s*(==|!=|in )"""
)


def test_no_family_name_comparisons_outside_the_families_module():
    found = []
    scripts = {f"bench/{p.name}": p for p in (ROOT / "bench").glob("*.py")}
    for name, path in {**library_modules(), **scripts}.items():
        if name == "sam_onnx.families":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FAMILY_COMPARISON.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_no_import_circles():
    modules = library_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["sam_onnx.runtime.core.predictor"], "the import scan found nothing: it is broken"
    circles = []
    for start in graph:  # a path back to itself, shortest first
        seen, frontier = {start: [start]}, [start]
        while frontier:
            nxt = []
            for node in frontier:
                for target in graph[node]:
                    if target == start:
                        circles.append(" -> ".join([*seen[node], start]))
                    elif target not in seen:
                        seen[target] = [*seen[node], target]
                        nxt.append(target)
            frontier = nxt
    assert sorted(set(circles)) == []


def test_page_contract_is_generated_from_python():
    committed = (ROOT / WEB_CONTRACT_PATH).read_text()
    assert committed == web_contract_text(), "stale: run `python -m sam_onnx.web_contract`"


def test_runtime_modules_import_from_their_old_paths_with_a_warning():
    """Code written before the rooms keeps working: each old path is the module at its new one."""
    import importlib
    import sys

    from sam_onnx.runtime import _moved
    from sam_onnx.runtime.amg import AutomaticMaskGenerator, generator

    assert AutomaticMaskGenerator is generator.AutomaticMaskGenerator  # the documented path, no warning
    for old, new in _moved.MOVED.items():
        sys.modules.pop(f"sam_onnx.runtime.{old}", None)
        moved = f"sam_onnx.runtime.{old} moved to sam_onnx.runtime.{new}"
        with pytest.warns(DeprecationWarning, match=moved):
            module = importlib.import_module(f"sam_onnx.runtime.{old}")
        assert module is importlib.import_module(f"sam_onnx.runtime.{new}")
    with pytest.warns(DeprecationWarning, match="embedding moved"):
        sys.modules.pop("sam_onnx.runtime.embedding", None)
        from sam_onnx.runtime.embedding import ImageEmbedding
    import sam_onnx.runtime

    assert ImageEmbedding is sam_onnx.runtime.ImageEmbedding
    assert not list((ROOT / "runtime").glob("predictor.py")), "a module left behind at the old path"
