"""Model cards state the architecture their checkpoint builds (issue #10: the U-Net card said 5
scales while the code builds 6)."""

from __future__ import annotations

import re

from segviewer.adapters.registry import get_card
from segviewer.training import checkpoint
from segviewer.training.ship import CARDS


def test_the_unet_card_counts_the_scales_its_checkpoint_builds() -> None:
    card = get_card("shapes_unet")
    widths = checkpoint.load(card.extra["checkpoint_path"])["config"]["widths"]
    m = re.search(r"(\d+) scales", card.family)
    assert m and int(m.group(1)) == len(widths) == 6
    # and a card written by `ship` for it says the same
    assert CARDS["unet"]["family"].format(scales=len(widths)) == card.family
