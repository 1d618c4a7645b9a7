"""The documentation site covers the code (issue 35): every command-line flag in the generated
command reference, every model parameter in the generated tables, every public name of the
package in the API page, every tutorial and gallery example in the site. The build itself (with
warnings as errors, doctests, links) runs in its own CI stage: ``sphinx-build`` needs the
``docs`` extra."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import zse_docs  # noqa: E402

PUBLIC_MODULES = ["zse", "zse.io", "zse.models", "zse.noise", "zse.counts", "zse.slabs", "zse.data"]


def test_every_flag_of_every_command_is_in_the_command_reference():
    page = zse_docs.cli_page()
    parsers = zse_docs.command_parsers()
    assert set(parsers) >= {"denoise", "fit", "demo", "relion", "info"}
    for name, parser in parsers.items():
        assert f"## zse {name}" in page
        for flag in zse_docs.flags_of(parser):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", page), (name, flag)


def test_every_model_parameter_is_in_the_parameter_tables():
    from zse.models import REGISTRY

    page = zse_docs.parameters_page()
    for cls in REGISTRY.values():
        section = page.split(f"## {cls.__name__} ")[1].split("\n## ")[0]
        for row in cls.parameters:
            assert f"| `{row.name}` |" in section, (cls.__name__, row.name)
            line = section.split(f"| `{row.name}` |")[1].split("\n")[0]
            assert f"`{row.default_label()}`" in line, (cls.__name__, row.name)
            if row.cli != "python":
                assert f"`{row.option}`" in section


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_in_the_api_page(module):
    api = (DOCS / "api.rst").read_text()
    import inspect

    space = importlib.import_module(module)
    for name in space.__all__:
        value = getattr(space, name)
        if inspect.ismodule(value):  # zse.io: a section of its own
            assert f"``{module}.{name}``" in api, (module, name)
            continue
        if not (inspect.isclass(value) or callable(value)):  # constants and the version: named
            assert f"``{name}``" in api or f"{module}.{name}" in api, (module, name)
            continue
        assert re.search(rf"^   {re.escape(name)}$", api, re.MULTILINE), (module, name)


def test_every_page_and_example_is_reachable():
    index = (DOCS / "index.md").read_text()
    for page in sorted((DOCS / "tutorials").glob("*.md")):
        assert f"tutorials/{page.stem}" in index, page.name
    for page in ("getting-started", "api", "ALGORITHM", "benchmarks", "reliability"):
        assert page in index
    examples = sorted((DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 4
    for example in examples:  # sphinx-gallery needs a title in the module docstring
        text = example.read_text()
        assert re.match(r'"""\n[^\n]+\n=+\n', text), example.name


def test_generated_pages_are_written(tmp_path):
    written = zse_docs.write_generated(tmp_path)
    assert sorted(p.name for p in written) == ["cli.md", "parameters.md"]
    assert all(p.read_text().startswith("# ") for p in written)


def test_readme_points_to_the_documentation():
    readme = (DOCS.parent / "README.md").read_text()
    assert "pip install . && zse demo" in readme and 'pip install ".[test]" && pytest' in readme
    assert "docs/" in readme and "sphinx-build" in readme
