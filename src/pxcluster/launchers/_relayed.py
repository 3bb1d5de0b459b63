"""Launchers layer: engines behind a per-host relay, for any launcher that starts processes.

With ``--relay`` (``relay = true`` in a launcher's section of ``pxcluster.toml``) a launcher
starts, on each host, one ``pxrelay --engines K`` instead of K engines: the relay starts
the engines itself, behind it (they die with it), and holds the host's one connection of
each kind to the controller (see ``pxcluster.relay``). Nothing is shared between hosts but
what the launcher already sends (the engine connection, in the environment): the relay's
Unix sockets live in a private folder of the host's temporary directory.

The handle of such a start is the relay's: stopping it stops its engines.
"""

from __future__ import annotations

import dataclasses

from pxcluster._errors import LauncherError
from pxcluster.launchers._launcher import LaunchHandle, LaunchSpec
from pxcluster.profile import LauncherConfig

RELAY_MODULE = "pxcluster.cli.relay"
#: The key, in a batch handle's ``extra``, marking the array task as a relay with that many
#: engines behind it: what ends or signals the task does it to all of them.
RELAY_KEY = "relay"
#: Flags of an engine's command line that the relay takes too (with a value / without).
_SHARED_WITH_VALUE = (
    "--profile",
    "--profile-dir",
    "--log-level",
    "--file",
    "--controller-ip",
    "--controller-port",
    "--controller-timeout",
)
_SHARED_FLAGS = ("--log-to-file",)


def wants_relay(options: LauncherConfig) -> bool:
    """Whether a launcher's settings ask for engines behind per-host relays."""
    return str(options.extra.get("relay", "")).strip().lower() in ("1", "true", "yes", "on")


def engines_per_job(options: LauncherConfig, launcher: str) -> int:
    """How many engines a batch launcher puts behind the relay of each array task
    (``engines_per_job`` in its section, ``--engines-per-job``): a batch system places
    jobs, not hosts, so the user says how many engines share one (usually a node's cores).

    Raises:
        LauncherError: it is missing or not a positive whole number.
    """
    value = str(options.extra.get("engines_per_job", "")).strip()
    if not value:
        raise LauncherError(
            f"--relay with the {launcher} launcher needs --engines-per-job K (or "
            f"engines_per_job = K in [{launcher}] of pxcluster.toml): each array task runs "
            "one pxrelay with K engines behind it, e.g. K = the cores of a node"
        )
    if not value.isdigit() or int(value) < 1:
        raise LauncherError(f"engines_per_job must be a whole number of at least 1, not {value!r}")
    return int(value)


def relayed(spec: LaunchSpec, engines: int) -> LaunchSpec:
    """The spec of one relay with ``engines`` engines behind it, for the engines' ``spec``
    (the engines keep every argument; the relay takes the profile, log and connection
    flags among them)."""
    shared: list[str] = []
    args = list(spec.args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _SHARED_WITH_VALUE and i + 1 < len(args):
            shared += [arg, args[i + 1]]
            i += 2
            continue
        if arg in _SHARED_FLAGS or arg.partition("=")[0] in _SHARED_WITH_VALUE:
            shared.append(arg)
        i += 1
    return dataclasses.replace(
        spec,
        module=RELAY_MODULE,
        args=(*shared, "--engines", str(engines), "--", *spec.args),
        count=1,
    )


def refuse_for_relayed(handle: LaunchHandle, engine_id: int, action: str) -> None:
    """Raise if ``handle`` is a relay's array task: ``action`` through the launcher would
    reach every engine behind it, not engine ``engine_id`` alone.

    Raises:
        LauncherError: it is one.
    """
    if handle.extra.get(RELAY_KEY):
        raise LauncherError(
            f"engine {engine_id} runs behind a relay with the other engines of "
            f"{handle.describe()}: {action} it through its launcher would end them all; "
            f"kill it from a client instead (mec.kill(targets={engine_id})): its relay ends it"
        )
