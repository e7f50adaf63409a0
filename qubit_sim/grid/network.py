"""Load feeder models and find buses in them.

A feeder is named by a *spec* string:

* a SimBench code, e.g. ``"1-LV-rural1--0-sw"`` or ``"simbench:1-MV-rural--0-sw"``;
* ``"pandapower:<function>"`` for a network function of :mod:`pandapower.networks`, e.g.
  ``"pandapower:create_cigre_network_lv"`` or ``"pandapower:mv_oberrhein"``.

Loading a SimBench net takes a few seconds, so each spec is loaded once per process and every
caller gets its own deep copy to modify freely.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from functools import cache
from typing import TYPE_CHECKING, Any

from qubit_sim.errors import GridError

if TYPE_CHECKING:  # pragma: no cover
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "PANDAPOWER_PREFIX",
    "SIMBENCH_PREFIX",
    "known_specs",
    "load_network",
    "network_buses",
    "resolve_bus",
]

SIMBENCH_PREFIX = "simbench:"
PANDAPOWER_PREFIX = "pandapower:"

_NET_CACHE: dict[str, Any] = {}
# Helpers re-exported by pandapower.networks that do not build a network.
_NOT_NETWORKS = {"sorted_from_json"}


@cache
def _simbench_codes() -> tuple[str, ...]:
    import simbench

    return tuple(simbench.collect_all_simbench_codes())


@cache
def _pandapower_network_functions() -> tuple[str, ...]:
    import pandapower.networks as pn

    names = [
        name
        for name, func in inspect.getmembers(pn, inspect.isfunction)
        if func.__module__.startswith("pandapower.networks")
        and not name.startswith("_")
        and name not in _NOT_NETWORKS
    ]
    return tuple(sorted(names))


def known_specs() -> list[str]:
    """Every spec :func:`load_network` accepts: SimBench codes, then ``pandapower:<name>``."""
    return list(_simbench_codes()) + [
        PANDAPOWER_PREFIX + name for name in _pandapower_network_functions()
    ]


def _unknown_spec(spec: str, reason: str) -> GridError:
    candidates = known_specs()
    # Match against bare names too, so "mv_oberhein" finds "pandapower:mv_oberrhein".
    bare = {c.removeprefix(PANDAPOWER_PREFIX): c for c in candidates}
    query = spec.removeprefix(SIMBENCH_PREFIX).removeprefix(PANDAPOWER_PREFIX)
    close = difflib.get_close_matches(query, list(bare), n=3, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(repr(bare[c]) for c in close)}?"
        if close
        else "; use a SimBench code such as '1-LV-rural1--0-sw' or 'pandapower:<network function>'"
    )
    return GridError(f"unknown network spec {spec!r} ({reason}){hint}")


def _build(spec: str) -> Any:
    """Build the net of a stripped spec; errors quote ``spec`` as the user wrote it."""
    if spec.startswith(PANDAPOWER_PREFIX):
        name = spec.removeprefix(PANDAPOWER_PREFIX)
        if name not in _pandapower_network_functions():
            raise _unknown_spec(spec, "not a network function of pandapower.networks")
        import pandapower.networks as pn

        try:
            return getattr(pn, name)()
        except Exception as exc:  # pandapower raises many types; report them as one
            raise GridError(f"pandapower network {spec!r} could not be built: {exc}") from exc
    code = spec.removeprefix(SIMBENCH_PREFIX)
    if code not in _simbench_codes():
        raise _unknown_spec(spec, "not a SimBench code")
    import simbench

    try:
        return simbench.get_simbench_net(code)
    except Exception as exc:
        raise GridError(f"SimBench network {code!r} could not be loaded: {exc}") from exc


def load_network(spec: str) -> pandapowerNet:
    """Load the feeder named by ``spec`` (see the module docstring for the accepted forms).

    The first call per spec builds the net (a SimBench net takes ~3 s); later calls return a deep
    copy of the cached net, so callers may modify what they get.

    Raises:
        GridError: the spec is unknown (with "did you mean" suggestions) or the net fails to build.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise GridError(f"network spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    key = spec.removeprefix(SIMBENCH_PREFIX)
    if key not in _NET_CACHE:
        _NET_CACHE[key] = _build(spec)
    return copy.deepcopy(_NET_CACHE[key])


def network_buses(spec: str) -> list[tuple[int, str]]:
    """``(index, name)`` of every bus of the feeder ``spec``, in ``net.bus`` order."""
    net = load_network(spec)
    return [(int(i), str(name)) for i, name in zip(net.bus.index, net.bus["name"], strict=True)]


def resolve_bus(net: pandapowerNet, bus: int | str) -> int:
    """The ``net.bus`` index of ``bus``, given as an index or as a bus name.

    A string is first looked up among bus names; a string of digits that names no bus is taken
    as an index.

    Raises:
        GridError: no such bus, or the name is ambiguous; the message lists valid choices.
    """
    index = net.bus.index
    if isinstance(bus, bool):
        raise GridError(f"bus {bus!r} is a boolean; give a bus index or a bus name")
    if isinstance(bus, int):
        if bus in index:
            return int(bus)
        raise GridError(f"bus index {bus} is not in the network; {_bus_choices(net)}")
    if isinstance(bus, str):
        matches = index[net.bus["name"].astype(str) == bus]
        if len(matches) == 1:
            return int(matches[0])
        if len(matches) > 1:
            raise GridError(
                f"bus name {bus!r} is used by {len(matches)} buses "
                f"(indices {[int(i) for i in matches[:5]]}); give the index instead"
            )
        if bus.strip().isdigit() and int(bus) in index:
            return int(bus)
        names = [str(n) for n in net.bus["name"]]
        close = difflib.get_close_matches(bus, names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise GridError(f"no bus named {bus!r} in the network; {hint}{_bus_choices(net)}")
    raise GridError(f"bus must be an index (int) or a name (str), got {type(bus).__name__}")


def _bus_choices(net: Any, limit: int = 5) -> str:
    shown = [f"{int(i)} ({name!r})" for i, name in zip(net.bus.index, net.bus["name"], strict=True)]
    more = f", ... ({len(shown)} buses in all)" if len(shown) > limit else ""
    return "valid buses include " + ", ".join(shown[:limit]) + more
