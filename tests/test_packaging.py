"""What the project promises about Pythons: the classifiers, the README and CI agree."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "Programming Language :: Python :: "


def test_classifiers_readme_and_requires_python_name_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minors = [
        c.removeprefix(PREFIX) for c in project["classifiers"]
        if c.startswith(PREFIX) and c.removeprefix(PREFIX).count(".") == 1
    ]
    assert minors, "pyproject.toml lists no Python versions in its classifiers"
    assert project["requires-python"] == f">={minors[0]}"
    tested = re.search(r"\*\*Tested Pythons:\*\* ([^(]+)", (ROOT / "README.md").read_text())
    assert tested is not None, "the README does not say which Pythons are tested"
    assert re.findall(r"3\.\d+", tested.group(1)) == minors


def test_ci_runs_the_readme_test_command_and_nox():
    readme = (ROOT / "README.md").read_text()
    command = next(
        line for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if ".venv/bin/python -m pytest" in line
    )
    assert command in readme
    assert command.endswith(".venv/bin/nox")
