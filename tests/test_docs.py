"""Every section of docs/ALGORITHM.md that a comment or docstring cites exists."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ALGORITHM.md"
CITATION = re.compile(r"ALGORITHM\.md\s+((?:§\d+(?:\.\d+)?(?:\s*[-,]\s*)?)+)")
SECTION = re.compile(r"§(\d+(?:\.\d+)?)")


def cited_sections():
    found = {}
    for folder in ("cpp", "python", "tests", "bench"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in {".py", ".cpp", ".hpp", ".pyi", ".txt"} or not path.is_file():
                continue
            for match in CITATION.finditer(path.read_text(encoding="utf-8")):
                for section in SECTION.findall(match.group(1)):
                    found.setdefault(section, str(path.relative_to(REPO)))
    return found


def headings():
    text = DOC.read_text(encoding="utf-8")
    top = set(re.findall(r"^## (\d+)\. ", text, flags=re.M))
    sub = set(re.findall(r"^### (\d+\.\d+) ", text, flags=re.M))
    return top | sub


def test_the_code_cites_sections():
    assert len(cited_sections()) >= 10


@pytest.mark.parametrize(("section", "where"), sorted(cited_sections().items()))
def test_every_cited_section_exists(section, where):
    assert section in headings(), (
        f"{where} cites ALGORITHM.md §{section}, which docs/ALGORITHM.md lacks"
    )


def test_core_stub_names_every_entry_point():
    """python/zse/_core.pyi (the readable list of zse._core) matches the compiled module."""
    import ast

    from zse import _core

    stub = ast.parse((REPO / "python" / "zse" / "_core.pyi").read_text())
    named = {
        node.name for node in stub.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    } | {
        target.id
        for node in stub.body
        if isinstance(node, ast.AnnAssign) and isinstance((target := node.target), ast.Name)
    }
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public - named == set(), "regenerate python/zse/_core.pyi (pybind11-stubgen)"
    assert {name for name in named if not name.startswith("_")} - public == set()


def test_readme_says_which_models_sample():
    """Every model in the README's table has sample() or the README says it has none."""
    import zse

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `zse\.(\w+)` \|", readme, flags=re.M)
    assert {"SSSC", "GPMM", "PMM", "Identity"} <= set(table)
    for name in table:
        if not callable(getattr(getattr(zse, name), "sample", None)):
            assert re.search(rf"`zse\.{name}`[^.]*has none", readme), name
