"""How a site's devices are named: the one rule the site builder and the results readers share."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["device_names"]


def device_names(groups: Sequence[tuple[str, str | None, int]]) -> list[list[str]]:
    """The device ids of each group ``(prefix, id, size)`` of asset entries, in order.

    A group with an ``id`` and one device keeps the ``id``; with several they are ``id1``,
    ``id2``, ... Groups without ``id`` are numbered ``prefix1``, ``prefix2``, ... skipping every
    id already taken: the ``id`` values of all groups, the ids numbered from them (wherever
    their group stands) and those numbered for earlier groups. Ids that two groups both give
    are left as they are (the scenario loader refuses them).

    Args:
        groups: Per asset entry: its kind's prefix (``ac``, ``dc``, ``battery``, ``pv``,
            ``load``), its ``id`` or None, and how many devices it makes.
    """
    named = {
        index: [given] if size == 1 else [f"{given}{i + 1}" for i in range(size)]
        for index, (_, given, size) in enumerate(groups)
        if given
    }
    # Taken before any device is numbered automatically, so that an automatic id never lands on
    # one an `id:` gives, whether that group stands before or after it.
    taken = {given for _, given, _ in groups if given}
    taken.update(device for ids in named.values() for device in ids)
    out: list[list[str]] = []
    for index, (prefix, _, size) in enumerate(groups):
        if index in named:
            out.append(named[index])
            continue
        ids: list[str] = []
        number = 1
        while len(ids) < size:
            candidate = f"{prefix}{number}"
            if candidate not in taken:
                ids.append(candidate)
                taken.add(candidate)
            number += 1
        out.append(ids)
    return out
