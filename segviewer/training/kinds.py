"""The kinds of network `segviewer train` knows, and which samples each eats ("instance" or
"semantic"). Kept free of torch so the CLI's argument parser stays instant; the task classes
(:data:`segviewer.training.tasks.TASKS`) must cover exactly these kinds.
"""

from __future__ import annotations

KINDS: dict[str, str] = {
    "maskrcnn": "instance",
    "fcn": "semantic",
    "unet": "semantic",
    "pcv": "semantic",
    "centernet": "instance",
    "yolo": "instance",
    "yolact": "instance",
}
