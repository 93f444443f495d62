"""The shapes world's label space, shared by the generator, the trainers and the bundled models.

Semantic label values are indices into ``CATEGORIES`` (stuff first, then things); 255 is void.
COCO-format files use ``category_id = index + 1`` (COCO reserves 0). torchvision detection
models use ``label = thing index + 1`` with 0 for background (see ``DETECTION_CATEGORIES``).
"""

from __future__ import annotations

STUFF: tuple[str, ...] = ("sky", "grass", "water", "road")
THINGS: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
CATEGORIES: tuple[str, ...] = STUFF + THINGS
ISTHING: tuple[bool, ...] = tuple([False] * len(STUFF) + [True] * len(THINGS))
VOID = 255

#: torchvision detection label space: 0 is background, then the things in order.
DETECTION_CATEGORIES: tuple[str, ...] = ("__background__",) + THINGS


def semantic_to_detection(label: int) -> int:
    """Semantic index of a thing class -> torchvision detection label (1-based)."""
    if not ISTHING[label]:
        raise ValueError(f"{CATEGORIES[label]!r} is stuff, not a thing")
    return label - len(STUFF) + 1


def detection_to_semantic(label: int) -> int:
    """torchvision detection label (1-based) -> semantic index."""
    if not 1 <= label <= len(THINGS):
        raise ValueError(f"detection label {label} is not a thing class")
    return label - 1 + len(STUFF)
