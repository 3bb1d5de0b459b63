"""Notebook output without a browser: grouping, headers, the results table, tracebacks, bars.

What the page tests (tests/integration/test_notebook_browser.py) see rendered, checked here
on the HTML and text the code produces, so that a regression names its function.
"""

import io
import re

import IPython
import pytest

from pxcluster import CompositeError, RemoteError
from pxcluster.client import EngineOutput, ResultList
from pxcluster.client._html import results_table
from pxcluster.client._progress import finished_text
from pxcluster.magics._options import parse_config, parse_px
from pxcluster.magics._output import (
    Transcript,
    grouped,
    header_bundle,
    plain_value_html,
    stream_block_text,
)
from pxcluster.magics._tracebacks import all_traceback_lines, coloured, error_lines

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TB = (
    "Traceback (most recent call last):\n"
    '  File "<engine 0 In [4]>", line 3, in <module>\n'
    "    outer(1)\n"
    '  File "<engine 0 In [4]>", line 2, in outer\n'
    "    return 1 / 0\n"
    "           ~~^~~\n"
    "ZeroDivisionError: division by zero\n"
)


def transcript_of(*pieces):
    transcript = Transcript()
    for engine, name, payload in pieces:
        if name == "display":
            transcript.add(EngineOutput(engine, name, payload["text/plain"], payload))
        else:
            transcript.add(EngineOutput(engine, name, payload))
    return transcript


def value(engine, number=5, display="42", rich=None):
    return {"id": engine, "number": number, "display": display, "execute_result": rich}


FIG = {"text/plain": "<Figure>", "image/png": "iVBOR"}
PIECES = [  # as they arrived: engines interleaved, stderr cutting into stdout
    (1, "stdout", "a1\n"),
    (0, "stdout", "a0\n"),
    (1, "stderr", "w1\n"),
    (0, "display", FIG),
    (1, "display", FIG),
    (0, "stdout", "b0"),
    (1, "display", FIG),
    (0, "display", FIG),
    (1, "stdout", "b1\n"),
]


def summary(blocks):
    return [(b.engine, b.kind, b.text or b.header) for b in blocks]


def test_type_grouping_is_every_stdout_then_every_stderr_then_displays_then_values():
    blocks = grouped(transcript_of(*PIECES), [value(1), value(0)], "type")
    assert summary(blocks) == [
        (0, "stdout", "a0\nb0"),
        (1, "stdout", "a1\nb1\n"),
        (1, "stderr", "w1\n"),
        (0, "rich", "[output:0]"),
        (0, "rich", "[output:0]"),
        (1, "rich", "[output:1]"),
        (1, "rich", "[output:1]"),
        (0, "rich", ""),  # a plain value: no header, its prefix says whose
        (1, "rich", ""),
    ]
    assert [b.prefix for b in blocks[-2:]] == ["[0] Out[5]: ", "[1] Out[5]: "]


def test_engine_grouping_keeps_each_engines_output_together():
    rich = {"text/plain": "T()", "text/html": "<b>t</b>"}
    blocks = grouped(transcript_of(*PIECES), [value(0, rich=rich), value(1)], "engine")
    assert summary(blocks) == [
        (0, "stdout", "a0\nb0"),
        (0, "rich", "[output:0]"),
        (0, "rich", "[output:0]"),
        (0, "rich", "Out[0:5]:"),  # a rich value gets ipyparallel's header
        (1, "stdout", "a1\nb1\n"),
        (1, "stderr", "w1\n"),
        (1, "rich", "[output:1]"),
        (1, "rich", "[output:1]"),
        (1, "rich", ""),
    ]


def test_order_grouping_collates_each_engines_nth_display():
    blocks = grouped(transcript_of(*PIECES), [], "order")
    assert [(b.engine, b.header) for b in blocks if b.kind == "rich"] == [
        (0, "[output:0]"),
        (1, "[output:1]"),
        (0, "[output:0]"),
        (1, "[output:1]"),
    ]
    with pytest.raises(ValueError, match="engine, order"):
        grouped(transcript_of(*PIECES), [], "by-colour")


def test_stream_blocks_and_headers():
    assert stream_block_text(2, "stdout", "one line") == "[stdout:2] one line\n"
    assert stream_block_text(0, "stderr", "a\nb\n") == "[stderr:0]\na\nb\n"
    header = header_bundle(3, "Out[3:7]:")
    assert set(header) == {"text/html"}  # nothing for a terminal to print
    assert 'class="pxcluster-header"' in header["text/html"]
    assert ">Out[3:7]:</div>" in header["text/html"]
    long_value = plain_value_html("[0] Out[27]: ", "[" + ", ".join(["1"] * 200) + "] <x>")
    assert "display:flex" in long_value  # wrapped lines stay in the value's column
    assert "white-space:pre-wrap" in long_value
    assert "&lt;x&gt;" in long_value


def test_group_outputs_option_and_pxconfig():
    assert parse_px("--group-outputs=engine", "x").group_outputs == "engine"
    assert parse_px("--targets 0 --group-outputs order", "x").group_outputs == "order"
    assert parse_px("", "x").group_outputs is None
    assert parse_config("--group-outputs type").group_outputs == "type"
    with pytest.raises(ValueError, match="--group-outputs 'colour': give one of type"):
        parse_px("--group-outputs colour", "x")


def entry(engine, code, stdout="", display=None, stderr="", **extra):
    return {
        "id": engine,
        "number": 12,
        "input": {"raw": code},
        "stdout": stdout,
        "stderr": stderr,
        "display": display,
        **extra,
    }


def headers_of(table):
    return re.findall(r"<th[^>]*>([^<]*)</th>", table)


def test_results_table_separates_printed_output_from_the_value():
    table = results_table([entry(0, "print('hi'); 6 * 7", "hi\n", "42"), entry(1, "x", "", "3")])
    assert headers_of(table) == ["engine", "In", "Printed", "Out"]
    assert "&lt;Results List&gt;" not in table
    assert ">Results List: 2 engines</caption>" in table
    printed, out = re.findall(r'<pre class="pxcluster-(?:stdout|value)"[^>]*>([^<]*)</pre>', table)[
        :2
    ]
    assert (printed, out) == ("hi", "42")
    # the counter shares a flex row with the code; no white boxes: transparent <pre>s
    assert re.search(r'display:flex.*\[12\].*<pre class="pxcluster-code"', table)
    assert table.count("background:transparent") == table.count("<pre")


def test_results_table_shows_errors_styled_as_stderr():
    error = RemoteError(1, "ZeroDivisionError", "division by zero", TB)
    table = results_table([entry(0, "1/0", stderr="warn\n"), entry(1, "1/0", error=error)])
    assert headers_of(table) == ["engine", "In", "Err"]
    cells = re.findall(r"<td ([^>]*)>(.*?)</td>", table, re.S)
    err_cells = [(style, body) for style, body in cells if "pxcluster-stderr" in body]
    assert len(err_cells) == 2
    assert all("--jp-rendermime-error-background" in style for style, _ in err_cells)
    assert "warn" in err_cells[0][1]
    assert "ZeroDivisionError: division by zero" in err_cells[1][1]
    assert "return 1 / 0" in err_cells[1][1]
    text = repr(ResultList([entry(1, "1/0", error=error)]))
    assert text.endswith("[1] Err[12]: ZeroDivisionError: division by zero")


def composite():
    return CompositeError(
        "execute",
        [
            RemoteError(0, "ZeroDivisionError", "division by zero", TB),
            RemoteError(2, "ZeroDivisionError", "division by zero", TB.replace("0 In", "2 In")),
        ],
    )


def test_error_hint_names_pxtb_and_where_the_error_is():
    lines = error_lines(composite())
    assert lines[-1] == "(all 2 tracebacks: %pxtb; the error object: sys.last_value)"
    assert all_traceback_lines(composite())[0] == "[0:execute]: "
    assert "[2:execute]: " in all_traceback_lines(composite())
    assert all_traceback_lines(composite(), [2])[0] == "[2:execute]: "
    assert '  File "<engine 2 In [4]>", line 2, in outer' in all_traceback_lines(composite(), [2])


def test_tracebacks_are_coloured_by_ipythons_theme_only_when_asked():
    lines = error_lines(composite())
    assert coloured(lines, "nocolor") == lines
    neutral = coloured(lines, "neutral")
    if IPython.version_info < (9,):  # IPython 8 (Python 3.10) has no themes: plain text
        assert neutral == lines
        return
    assert [ANSI.sub("", line) for line in neutral] == lines
    assert sum("\x1b[" in line for line in neutral) >= 6
    # the exception's name, and the last frame (emphasised) differ from the plain text
    exc = next(line for line in neutral if ANSI.sub("", line).startswith("ZeroDivisionError:"))
    assert exc.startswith("\x1b[")
    frames = [line for line in neutral if "File " in line]
    assert frames[0] != frames[1].replace("line 2, in outer", "line 3, in <module>")


def test_a_finished_bar_reads_as_text():
    from tqdm.std import tqdm

    bar = tqdm(total=4, desc="map", unit="item", file=io.StringIO(), ascii=False)
    bar.update(4)
    text = finished_text(bar)
    bar.close()
    assert text.startswith("map: 100%|██████████| 4/4 [")
