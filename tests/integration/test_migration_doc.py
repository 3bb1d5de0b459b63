"""docs/migration.md: every python block runs, in order, against a real 4-engine cluster of the
default profile, as a reader would paste them into a script (``__main__``)."""

import re
from pathlib import Path

import pytest

from pxcluster.profile import ProfilePaths
from pxcluster.testing import cluster_in

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migration.md"


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.timeout(180)
def test_every_example_of_the_migration_page_runs(capsys):
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 8
    with cluster_in(ProfilePaths.for_profile("default").dir, n=4):
        namespace = {"__name__": "__main__"}
        for number, block in enumerate(blocks, 1):
            try:
                exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"block {number} failed:\n{block}") from exc
    out = capsys.readouterr().out
    assert "[stdout:0] hi" in out
