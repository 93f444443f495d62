"""The plugin door: model families that other packages add through the ``segviewer.adapters``
entry-point group, without editing segviewer (e.g. a wrapper around a framework whose licence we do
not take on ourselves).

A package declares, in its ``pyproject.toml``::

    [project.entry-points."segviewer.adapters"]
    my_models = "my_package:cards"

``my_package.cards`` is a callable returning :class:`~segviewer.adapters.base.ModelCard` objects
(or is a list of them). Each card names its adapter class in ``extra["adapter"]`` as
``"module:Class"``; :func:`segviewer.adapters.registry.create_adapter` imports it and calls
``Class(card)``, and the class implements :class:`~segviewer.adapters.base.ModelAdapter` (``card``,
``loaded``, ``device``, ``load(device, weights=None, progress=None)``, ``predict(image, params,
timings) -> Result``). The README has a complete example.

A plugin that fails to import, returns something else or reuses a taken id is left out with one
line that names it (``segviewer models`` prints it); the other models still list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, get_args

from segviewer.adapters.base import ModelCard, Task

__all__ = ["GROUP", "plugin_cards"]

GROUP = "segviewer.adapters"


def _where(ep: EntryPoint) -> str:
    name = getattr(getattr(ep, "dist", None), "name", None)
    return f"plugin {ep.name!r} ({ep.value}{f', from {name}' if name else ''})"


def _cards_of(obj: Any) -> list[Any]:
    if isinstance(obj, ModelCard):
        return [obj]
    if callable(obj):
        obj = obj()
    if isinstance(obj, ModelCard):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, dict)):
        return list(obj)
    raise TypeError(f"it gave {type(obj).__name__}, not model cards")


def _problem(card: Any) -> str | None:
    if not isinstance(card, ModelCard):
        return f"gave a {type(card).__name__}, not a ModelCard"
    if card.task not in get_args(Task):
        return f"card {card.id!r} has task {card.task!r}, not one of {', '.join(get_args(Task))}"
    if ":" not in str(card.extra.get("adapter", "")):
        return f"card {card.id!r} names no adapter class in extra['adapter'] ('module:Class')"
    return None


def plugin_cards(taken: set[str]) -> tuple[list[ModelCard], list[str]]:
    """The cards every installed plugin registers, and one line per plugin or card left out.

    ``taken`` are ids already used (the zoo, the bundled cards); a plugin cannot replace them.
    Each card's ``extra["plugin"]`` records where it came from.
    """
    cards: list[ModelCard] = []
    problems: list[str] = []
    seen = set(taken)
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        where = _where(ep)
        try:
            found = _cards_of(ep.load())
        except Exception as err:  # noqa: BLE001 - a broken plugin must not break the listing
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            problems.append(f"{where} could not be loaded ({type(err).__name__}: {first})")
            continue
        for card in found:
            why = _problem(card)
            if why is None and card.id in seen:
                why = f"card id {card.id!r} is already taken"
            if why is not None:
                problems.append(f"{where}: {why}")
                continue
            seen.add(card.id)
            cards.append(dataclasses.replace(card, extra={**card.extra, "plugin": where}))
    return cards, problems
