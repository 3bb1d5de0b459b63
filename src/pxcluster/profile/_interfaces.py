"""Profile layer: turning ``--ip``/``--location`` settings into addresses.

A controller that engines on other hosts reach must listen on an address those hosts can
route to, and must write into the connection files an address they can use. Users know
their network by interface names (``ib0``, ``eth1``) as often as by addresses, so both are
accepted; ``0.0.0.0`` (every interface) needs a *location* to write, chosen here as the
first up, non-loopback IPv4 address unless ``--location`` names one.
"""

from __future__ import annotations

import ipaddress
import socket

EVERY_INTERFACE = ("0.0.0.0", "*", "")


def interface_addresses() -> dict[str, str]:
    """Each interface that is up and has an IPv4 address: name -> that address."""
    import psutil  # here: every engine imports this module, few resolve an interface

    stats = psutil.net_if_stats()
    found = {}
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family == socket.AF_INET:
                found[name] = addr.address
                break
    return found


def resolve_ip(value: str) -> str:
    """``value`` as an address to bind: an IPv4/IPv6 address, ``0.0.0.0``/``*`` for every
    interface, an interface name (its IPv4 address), or a host name (resolved).

    Raises:
        ValueError: none of these (the message lists the interfaces there are).
    """
    if value in EVERY_INTERFACE:
        return "0.0.0.0"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    interfaces = interface_addresses()
    if value in interfaces:
        return interfaces[value]
    try:
        return socket.gethostbyname(value)
    except OSError:
        names = ", ".join(f"{n} ({a})" for n, a in sorted(interfaces.items())) or "none"
        raise ValueError(
            f"--ip {value!r} is neither an address, an interface nor a known host name; "
            f"interfaces here: {names}"
        ) from None


def default_location(bound: str) -> str:
    """The address to write into connection files for a controller bound on ``bound``
    when no ``--location`` is given: ``bound`` itself, or for every interface the first
    up, non-loopback IPv4 address (loopback when there is none)."""
    if bound not in EVERY_INTERFACE and bound != "0.0.0.0":
        return bound
    for name, address in interface_addresses().items():
        if not ipaddress.ip_address(address).is_loopback and name != "lo":
            return address
    return "127.0.0.1"
