"""Notebook output as a person sees it: JupyterLab in headless Chromium, a real cluster.

One notebook with a cell per case runs in a real JupyterLab (``services.jupyter``) against
a 2-engine cluster; the test reads the rendered page as a user would look at it: an engine
header above each DataFrame and figure, one ``[stdout:E]`` block per engine once the cell
is done, the results table's columns (printed output apart from the value, errors in an
Err column after ``%result``), every engine's traceback from ``%pxtb``, and, after the
notebook is saved and reopened with a new kernel, progress bars as finished text instead
of "Error displaying widget: model not found".

Screenshots of each case go to the test's tmp folder, and to ``$PXCLUSTER_SCREENSHOTS``
when set (``PXCLUSTER_SCREENSHOTS=docs/screens`` refreshes the ones in the docs).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from pxcluster.testing import cluster_in

T_MS = 90_000  # any single wait on the page (a loaded 2-core machine is slow to render)

CELLS = [
    (
        "connect",
        "from pxcluster import client\nmec = client.MultiEngineClient()\nmec.activate()\nmec.ids",
    ),
    (
        "frames",
        "%%px\nimport sys, time\nimport pandas as pd\nfor step in range(3):\n"
        "    print(f'step {step}')\n    print(f'warning {step}', file=sys.stderr)\n"
        "    time.sleep(0.05)\npd.DataFrame({'x': range(3), 'y': [0.5, 1.5, 2.5]})",
    ),
    (
        "by_engine",
        "%%px --group-outputs engine\nimport sys\nprint('out')\nprint('err', file=sys.stderr)\n7",
    ),
    (
        "figure",
        "%%px\nimport matplotlib.pyplot as plt\nplt.figure(figsize=(3, 1.6))\n"
        "plt.plot([1, 3, 2])\nplt.title('a figure')\nplt.show()",
    ),
    ("table", "r = mec.execute('print(\"hello\"); x = 7; x * 6')\nr"),
    ("error", "%px 1 / 0"),
    ("result", "%result"),
    ("pxtb", "%pxtb"),
    (
        "wait",
        "pending = mec.execute('import time; time.sleep(0.3)', block=False)\n"
        "pending.wait_interactive()",
    ),
    ("map", "squares = mec.map(lambda x: x * x, range(40), progress=True)\nsum(squares)"),
]
INDEX = {name: i for i, (name, _) in enumerate(CELLS)}

# What a cell's outputs look like on the page: one entry per output, in order.
OUTPUTS_JS = """(i) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i];
  return [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => ({
    mime: o.getAttribute('data-mime-type') || '',
    text: o.innerText,
    header: o.querySelector('.pxcluster-header')?.innerText || null,
    tables: o.querySelectorAll('table').length,
    images: o.querySelectorAll('img').length,
  }));
}"""
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
  .map(p => p.innerText.trim())"""


def wait_until_all_ran(page, tmp_path):
    """Wait until every cell shows its ``[N]:`` prompt; else fail with the prompts seen."""
    done = (
        f"() => {{ const p = ({PROMPTS_JS})(); return p.length === {len(CELLS)} && "
        "p.every(t => /^\\[\\d+\\]:$/.test(t)); }"
    )
    try:
        page.wait_for_function(done, timeout=3 * T_MS)
    except Exception as exc:  # playwright's TimeoutError: say where it stopped
        page.screenshot(path=str(tmp_path / "stuck.png"), full_page=True)
        prompts = page.evaluate(PROMPTS_JS)
        raise AssertionError(f"the notebook did not finish: prompts {prompts}") from exc


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    for name, source in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        if name == "error":
            cell.metadata["tags"] = ["raises-exception"]  # "run all" goes on past it
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, path)


def open_notebook(browser, server, name):
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    page.goto(server.lab_url(name))
    page.wait_for_function(
        "window.jupyterapp && document.querySelectorAll('.jp-Notebook .jp-CodeCell').length "
        f">= {len(CELLS)}",
        timeout=T_MS,
    )
    page.add_style_tag(content=".Toastify { display: none !important; }")  # "news?" toast
    page.evaluate("window.jupyterapp.shell.collapseLeft()")
    page.wait_for_function(  # run-all before the kernel is connected would run nothing
        "(() => { const k = window.jupyterapp.shell.currentWidget?.sessionContext?.session"
        "?.kernel; return k && k.connectionStatus === 'connected' && k.status === 'idle'; })()",
        timeout=T_MS,
    )
    return page


def shoot(page, tmp_path, cells, name):
    """A screenshot of the cells ``cells`` (names) into tmp_path and $PXCLUSTER_SCREENSHOTS."""
    locators = page.locator(".jp-Notebook .jp-CodeCell")
    first, last = (locators.nth(INDEX[c]) for c in (cells[0], cells[-1]))
    first.evaluate("cell => cell.scrollIntoView({block: 'start'})")
    top = first.bounding_box()
    bottom = last.bounding_box()
    assert top is not None
    assert bottom is not None
    clip = {
        "x": top["x"],
        "y": top["y"],
        "width": top["width"],
        "height": min(bottom["y"] + bottom["height"] - top["y"], 1350),
    }
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target), clip=clip)
    keep = os.environ.get("PXCLUSTER_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(keep) / target.name)


@pytest.mark.timeout(360)
def test_notebook_output_reads_well_in_jupyterlab(jupyter_server, chromium, tmp_path):
    write_notebook(jupyter_server.root / "outputs.ipynb")
    with cluster_in(jupyter_server.pxroot / "profile_default", n=2):
        page = open_notebook(chromium, jupyter_server, "outputs.ipynb")
        page.evaluate("void window.jupyterapp.commands.execute('notebook:run-all-cells')")
        wait_until_all_ran(page, tmp_path)
        outputs = {name: page.evaluate(OUTPUTS_JS, INDEX[name]) for name, _ in CELLS}

        check_frames(outputs["frames"])
        check_figure(outputs["figure"])
        check_by_engine(outputs["by_engine"])
        check_tables(page, outputs)
        check_tracebacks(outputs)
        shoot(page, tmp_path, ["frames", "frames"], "notebook-engine-headers")
        shoot(page, tmp_path, ["figure", "figure"], "notebook-figures")
        shoot(page, tmp_path, ["table", "table"], "notebook-results-table")
        shoot(page, tmp_path, ["error", "pxtb"], "notebook-result-after-error")

        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "!document.querySelector('.jp-mod-current .jp-mod-dirty')", timeout=T_MS
        )
        page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
        page.close()

    saved = nbformat.read(jupyter_server.root / "outputs.ipynb", as_version=4)
    for name in ("wait", "map"):
        data = [o.get("data", {}) for o in saved.cells[INDEX[name]].outputs]
        assert all("application/vnd.jupyter.widget-view+json" not in d for d in data), data
        assert ": 100%|" in data[0]["text/plain"]  # the finished bar, as text

    reopened = open_notebook(chromium, jupyter_server, "outputs.ipynb")
    reopened.wait_for_function(f"({OUTPUTS_JS})({INDEX['map']}).length > 0", timeout=T_MS)
    shown = reopened.locator(".jp-Notebook").inner_text()
    assert "Error displaying widget" not in shown
    wait = reopened.evaluate(OUTPUTS_JS, INDEX["wait"])
    assert [o["text"].split("|")[0] for o in wait] == ["execute: 100%"]
    assert "2/2" in wait[0]["text"]  # one reply per engine
    finished_map = reopened.evaluate(OUTPUTS_JS, INDEX["map"])
    assert "map: 100%" in finished_map[0]["text"]
    assert "40/40" in finished_map[0]["text"]
    assert finished_map[-1]["text"].strip() == "20540"
    shoot(reopened, tmp_path, ["wait", "map"], "notebook-reopened-progress")
    reopened.close()


def check_frames(outputs):
    """Streams grouped (all stdout, then all stderr: one block per engine), then each
    DataFrame under its engine's ``Out[E:N]:`` header."""
    streams = [o for o in outputs if "stdout" in o["mime"] or "stderr" in o["mime"]]
    stdout = "".join(o["text"] for o in streams if "stdout" in o["mime"])
    stderr = "".join(o["text"] for o in streams if "stderr" in o["mime"])
    for engine in (0, 1):
        assert stdout.count(f"[stdout:{engine}]") == 1, stdout
        assert stderr.count(f"[stderr:{engine}]") == 1, stderr
    blocks = stdout.split("[stdout:1]")
    assert [line for line in blocks[0].splitlines() if line] == [
        "[stdout:0]",
        "step 0",
        "step 1",
        "step 2",
    ]
    assert [line for line in blocks[1].splitlines() if line] == ["step 0", "step 1", "step 2"]
    assert "[0] " not in stdout  # the live, line-by-line form was replaced
    rich = [o for o in outputs if o not in streams]
    assert [o["header"] is not None for o in rich] == [True, False, True, False]
    assert rich[0]["header"].startswith("Out[0:")
    assert rich[2]["header"].startswith("Out[1:")
    assert [o["tables"] for o in rich] == [0, 1, 0, 1]  # a DataFrame under each header


def check_by_engine(outputs):
    """``--group-outputs engine``: each engine's stdout, stderr and value together."""
    kinds = [o["mime"].rsplit("/", 1)[-1] for o in outputs]
    texts = [o["text"].strip() for o in outputs]
    assert kinds == ["vnd.jupyter.stdout", "vnd.jupyter.stderr", "html"] * 2
    assert texts[0:2] == ["[stdout:0] out", "[stderr:0] err"]
    assert texts[3:5] == ["[stdout:1] out", "[stderr:1] err"]
    assert re.fullmatch(r"\[0\] Out\[\d+\]:\s+7", texts[2])
    assert re.fullmatch(r"\[1\] Out\[\d+\]:\s+7", texts[5])


def check_figure(outputs):
    headers = [o["header"] for o in outputs if o["header"]]
    images = [o["images"] for o in outputs if not o["header"]]
    assert headers == ["[output:0]", "[output:1]"]
    assert images == [1, 1]


def columns(page, index):
    return page.evaluate(
        """(i) => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i]
              .querySelectorAll('table.pxcluster-results th')].map(th => th.innerText)""",
        index,
    )


def check_tables(page, outputs):
    assert columns(page, INDEX["table"]) == ["engine", "In", "Printed", "Out"]
    table = outputs["table"][0]["text"]
    assert "Results List: 2 engines" in table
    rows = page.evaluate(
        """(i) => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i]
              .querySelectorAll('table.pxcluster-results tbody tr')]
              .map(tr => [...tr.children].map(td => td.innerText.trim()))""",
        INDEX["table"],
    )
    assert [row[2:] for row in rows] == [["hello", "42"], ["hello", "42"]]
    assert all(re.match(r"\[\d+\]\s+print\(", row[1]) for row in rows)
    # the [N] counter sits on the code's first line, not on a line of its own
    offsets = page.evaluate(
        """(i) => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i]
              .querySelectorAll('pre.pxcluster-code')].map(code => Math.abs(
                code.getBoundingClientRect().top
                - code.previousElementSibling.getBoundingClientRect().top))""",
        INDEX["table"],
    )
    assert offsets == [0, 0]
    # %result after a failed command: the table, with each engine's error in Err
    assert columns(page, INDEX["result"]) == ["engine", "In", "Err"]
    result = outputs["result"][0]["text"]
    assert result.count("ZeroDivisionError: division by zero") == 2


def check_tracebacks(outputs):
    error = outputs["error"]
    assert len(error) == 1
    assert "stderr" in error[0]["mime"]  # shown as an error output
    assert "(all 2 tracebacks: %pxtb; the error object: sys.last_value)" in error[0]["text"]
    pxtb = outputs["pxtb"][0]["text"]
    assert "[0:execute]:" in pxtb
    assert "[1:execute]:" in pxtb
    assert pxtb.count("ZeroDivisionError: division by zero") == 2
