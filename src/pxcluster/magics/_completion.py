"""Magics layer: tab completion of the engines' names in ``mec['...`` and ``mec[0]['...``.

IPython completes ``mec['`` by itself from ``MultiEngineClient._ipython_key_completions_``
only where its guarded evaluation allows, and it never evaluates ``mec[0]`` (a call of our
``__getitem__``). This matcher reads the client (or the engine view of ``mec[N]``, which
costs no round trip) from the user's namespace by name, asks the engines for their names
(one KEYS request, with a short timeout) and offers those that start with what is typed.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult

from pxcluster.client import MultiEngineClient

_SUBSCRIPT = re.compile(
    r"(?P<name>[A-Za-z_]\w*)\s*(?:\[\s*(?P<index>\d+)\s*\]\s*)?\[\s*['\"](?P<prefix>\w*)$"
)


class RemoteNameMatcher:
    """A completion matcher (IPython's matcher API v2) for the namespace of ``shell``."""

    # What IPython's completer reads of a matcher (its ``context_matcher`` decorator sets
    # the same attributes on a function).
    matcher_api_version = 2
    matcher_priority = 0.0
    matcher_identifier = "pxcluster.remote_names"

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self.__qualname__ = self.matcher_identifier  # IPython reads it as a fallback id

    def __call__(self, context: CompletionContext) -> SimpleMatcherResult:
        found = _SUBSCRIPT.search(context.text_until_cursor)
        client = self._shell.user_ns.get(found["name"]) if found else None
        if found is None or not isinstance(client, MultiEngineClient):
            return {"completions": [], "suppress": False}
        view = client[int(found["index"])] if found["index"] else client
        prefix = found["prefix"]
        names = [n for n in view._ipython_key_completions_() if n.startswith(prefix)]
        return {
            "completions": [SimpleCompletion(n, type="remote name") for n in names],
            "matched_fragment": prefix,
            "suppress": bool(names),
        }
