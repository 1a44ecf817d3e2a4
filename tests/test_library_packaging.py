"""The library's packaging in this repository (library/pyproject.toml, distribution date-legw).

The wheel itself is built and installed by .ci/library_stage.sh (tests/test_date_install.py, one
of the library's own tests, tests/test_date_*.py, which that stage runs against the wheel);
here, what keeps that build honest: one copy of the code, torch as the only requirement, no module
importing anything beyond the standard library, torch and its own extra, and the suite pinned to
the library's version.
"""

import ast
import pathlib
import re
import sys

import pytest

import date

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"

#: Third-party imports each module may make: torch everywhere, each adapter its own framework.
#: date.optim imports pytorch_optimizer inside the LARS / LAMB builders only.
ALLOWED = {
    "lamb": {"torch", "pytorch_optimizer"},
    "optim": {"torch", "pytorch_optimizer"},
    "optax": {"jax"},
}


def library_project():
    return tomllib.loads((LIBRARY / "pyproject.toml").read_text())["project"]


def test_library_builds_the_top_level_date_folder():
    assert (LIBRARY / "date").is_symlink()
    assert (LIBRARY / "date").resolve() == ROOT / "date"


def test_library_requires_torch_only_and_offers_the_extras():
    project = library_project()
    assert project["name"] == "date-legw"
    assert project["dependencies"] == ["torch>=2.13"]
    assert set(project["optional-dependencies"]) == {"lars", "lightning", "transformers", "jax"}
    # The torch floor is the oldest release the CI stage tests the library on.
    stage = (ROOT / ".ci" / "library_stage.sh").read_text()
    versions = re.search(r"^TORCH_VERSIONS=\(([^)]*)\)", stage, re.M).group(1).split()
    assert versions[0] == "2.13.0" and project["dependencies"][0] == "torch>=2.13"


def test_suite_pins_this_version_of_the_library():
    suite = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"date-legw=={date.__version__}" in suite["dependencies"]


def test_pypi_readme_is_the_docs_page():
    # The sdist cannot carry a link, so library/README.md is a copy: cp docs/library.md library/.
    assert (LIBRARY / "README.md").read_text() == (ROOT / "docs" / "library.md").read_text()


def test_modules_import_nothing_beyond_torch_and_their_extra():
    for path in sorted((ROOT / "date").glob("*.py")):
        allowed = {"date", "torch", *ALLOWED.get(path.stem, set())}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in allowed, (path.name, name)
