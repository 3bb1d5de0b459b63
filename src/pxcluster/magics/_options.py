"""Magics layer: the options of ``%px`` / ``%%px`` and ``%result``, parsed without IPython.

Options come first and the code follows as written (``%px --targets 0,2 a = 5``), so the
code is never re-quoted or split. Only the option names below are taken as options; any
other text starts the code. Errors are ValueErrors, which the magics show as usage errors.
"""

from __future__ import annotations

import dataclasses
import re

from pxcluster.client._targets import TargetSpec

_OPTION = re.compile(
    r"\s*(?:(?P<flag>--block|--noblock|--local)|(?:--targets|-t)(?:\s*=\s*|\s+)(?P<targets>\S+)"
    r"|--group-outputs(?:\s*=\s*|\s+)(?P<group>\S+))"
    r"(?=\s|$)"
)
#: How ``--group-outputs`` can order a finished command's output in a notebook
#: (ipyparallel's three); the first is the default.
GROUPINGS = ("type", "engine", "order")


@dataclasses.dataclass(frozen=True)
class PxOptions:
    """What one ``%px`` / ``%%px`` asks for; None means "the client's own setting"."""

    code: str
    targets: TargetSpec | None = None
    block: bool | None = None
    local: bool = False
    group_outputs: str | None = None


def parse_targets(text: str) -> TargetSpec:
    """``all``, an id (``3``, ``-1`` the last), ids (``0,2``), a range (``1:3``, end
    excluded) or ``[0, 2]``.

    Raises:
        ValueError: none of those.
    """
    spec = text.strip().strip("[]()").replace(" ", "")
    try:
        if spec == "all":
            return "all"
        if ":" in spec:
            start, stop = spec.split(":")
            return list(range(int(start or 0), int(stop)))
        # a negative id counts from the last engine (``-1``), resolved by the magics
        ids = [int(part) for part in spec.split(",") if part]
    except ValueError:
        ids = []
    if not ids:
        raise ValueError(
            f"--targets {text!r}: give 'all', an engine id, ids like 0,2 or a range like 1:3"
        )
    return ids[0] if len(ids) == 1 and "," not in spec else ids


def parse_grouping(text: str) -> str:
    """One of ``GROUPINGS``.

    Raises:
        ValueError: anything else.
    """
    if text not in GROUPINGS:
        raise ValueError(f"--group-outputs {text!r}: give one of {', '.join(GROUPINGS)}")
    return text


def _take_options(line: str) -> tuple[PxOptions, str]:
    """The leading options of ``line`` (code left empty) and the text after them."""
    options = PxOptions(code="")
    while match := _OPTION.match(line):
        if match["flag"] == "--local":
            options = dataclasses.replace(options, local=True)
        elif match["flag"]:
            options = dataclasses.replace(options, block=match["flag"] == "--block")
        elif match["group"]:
            options = dataclasses.replace(options, group_outputs=parse_grouping(match["group"]))
        else:
            options = dataclasses.replace(options, targets=parse_targets(match["targets"]))
        line = line[match.end() :]
    return options, line.strip()


def parse_px(line: str, cell: str | None = None) -> PxOptions:
    """The options and code of ``%px LINE`` (``cell`` None) or of a ``%%px LINE`` cell.

    Raises:
        ValueError: a bad ``--targets``, text after a ``%%px``'s options, or no code.
    """
    options, rest = _take_options(line)
    if cell is not None:
        if rest:
            raise ValueError(f"%%px takes options only on its first line, not {rest!r}")
        rest = cell
    if not rest.strip():
        raise ValueError("no code to run: %px CODE, or a %%px cell")
    return dataclasses.replace(options, code=rest)


def parse_result(line: str) -> TargetSpec | None:
    """The ``--targets`` of ``%result`` (None: the client's targets).

    Raises:
        ValueError: anything but ``--targets``.
    """
    options, rest = _take_options(line)
    if rest or options.block is not None or options.local or options.group_outputs:
        raise ValueError("%result takes only --targets")
    return options.targets


def parse_config(line: str) -> PxOptions:
    """The ``--targets`` and ``--block`` / ``--noblock`` of ``%pxconfig``.

    Raises:
        ValueError: anything else, or nothing at all.
    """
    options, rest = _take_options(line)
    nothing = options.targets is None and options.block is None and not options.group_outputs
    if rest or options.local or nothing:
        raise ValueError(
            "%pxconfig takes --targets T, --block or --noblock, --group-outputs engine|order|type"
        )
    return options
