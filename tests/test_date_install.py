"""The installed date-legw wheel, in an environment made for it by .ci/library_stage.sh.

That stage creates a venv with another torch than the suite's (2.13.0, and 2.14.1), lists what is
installed (DATE_PIP_LIST_BEFORE), installs the wheel (DATE_LIBRARY_WHEEL) with pip as a user would,
then runs the library's tests from a copy outside the repository. Here: the wheel holds the date
package alone, asks for torch only, and installing it changed nothing but adding itself. Without
those variables (the suite's own run) the tests are skipped: they need that fresh environment.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile
from importlib import metadata

import pytest

import date

WHEEL = os.environ.get("DATE_LIBRARY_WHEEL")
BEFORE = os.environ.get("DATE_PIP_LIST_BEFORE")
pytestmark = pytest.mark.skipif(
    not (WHEEL and BEFORE), reason="needs the fresh venv of .ci/library_stage.sh"
)


def pip_list(text):
    return {entry["name"].lower(): entry["version"] for entry in json.loads(text)}


def installed():
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return pip_list(listing)


def test_installing_the_wheel_added_itself_and_left_torch_alone():
    before = pip_list(pathlib.Path(BEFORE).read_text())
    after = installed()
    added = {name: version for name, version in after.items() if name not in before}
    assert added == {"date-legw": date.__version__}
    assert {name: after[name] for name in before} == before  # torch included: same version
    assert "torch" in before


def test_date_is_imported_from_the_wheel_not_a_checkout():
    assert "site-packages" in pathlib.Path(date.__file__).parts
    assert metadata.version("date-legw") == date.__version__


def test_the_wheel_holds_the_date_package_and_asks_for_torch_only():
    with zipfile.ZipFile(WHEEL) as wheel:
        names = wheel.namelist()
        dist_info = f"date_legw-{date.__version__}.dist-info/"
        package = sorted(name for name in names if not name.startswith(dist_info))
        requirements = [
            line.removeprefix("Requires-Dist: ")
            for line in wheel.read(dist_info + "METADATA").decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    installed_package = pathlib.Path(date.__file__).parent
    assert package == sorted(f"date/{path.name}" for path in installed_package.glob("*.py"))
    assert "date/__init__.py" in package and "date/scheduler.py" in package
    unconditional = [requirement for requirement in requirements if "extra ==" not in requirement]
    assert unconditional == ["torch>=2.13"]
    extras = {
        requirement.split("extra == ")[1].strip("'\"")
        for requirement in requirements
        if "extra ==" in requirement
    }
    assert extras == {"lars", "lightning", "transformers", "jax"}
