"""Client layer: which engines a request goes to (``targets``), checked once here."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Literal

TargetSpec = int | Sequence[int] | Literal["all"]


def normalize_targets(spec: object) -> list[int]:
    """Engine ids from an id or a sequence of ids (numpy integers too).

    Raises:
        TypeError: something that is not an engine id (bools and strings included).
        ValueError: no ids, a negative id, or an id given twice.
    """
    if isinstance(spec, (bool, str, bytes)):
        raise TypeError(f"targets must be 'all', an engine id or a list of ids, not {spec!r}")
    try:
        items: list[object] = [operator.index(spec)]  # type: ignore[arg-type]
    except TypeError:
        if not isinstance(spec, Iterable):
            raise TypeError(
                f"targets must be 'all', an engine id or a list of ids, not {spec!r}"
            ) from None
        items = list(spec)
    ids = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"targets holds {item!r}, which is not an engine id")
        try:
            ids.append(operator.index(item))  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"targets holds {item!r}, which is not an engine id") from None
    if not ids:
        raise ValueError("targets is an empty list")
    if any(i < 0 for i in ids):
        raise ValueError(f"engine ids are never negative: {ids}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"targets names an engine more than once: {ids}")
    return ids

