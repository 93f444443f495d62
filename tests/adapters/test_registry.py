"""The registry: the torchvision zoo from its weights' metadata, bundled TOML cards, adapter creation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from torchvision.models import get_model_weights

from segviewer.adapters import registry as R
from segviewer.adapters.base import ModelAdapter
from segviewer.core.errors import SegviewerError

ISSUE_IDS = {
    "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn",
    "ssdlite320_mobilenet_v3_large", "keypointrcnn_resnet50_fpn", "fcn_resnet50", "fcn_resnet101",
    "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
}


def test_importing_the_registry_does_not_import_torch() -> None:
    code = "import sys, segviewer.adapters.registry as r; r.models_dir(); r.bundled_card_problems(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_zoo_listing_from_the_json_cache_needs_no_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("SEGVIEWER_CACHE", str(tmp_path))
    path = R._zoo_cache_file()
    assert path is not None and path.parent == tmp_path and "torchvision-zoo-" in path.name
    path.write_text(json.dumps(R._zoo_meta()))  # what the first listing on a machine writes
    code = ("import sys, json, segviewer.adapters.registry as r; cards = r.list_cards(); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(json.dumps({c.id: list(c.categories) for c in cards}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    got = json.loads(out)
    assert {k: tuple(v) for k, v in got.items() if k in R.ZOO} == {m: R.get_card(m).categories for m in R.ZOO}


def test_zoo_cards_come_from_torchvision_meta() -> None:
    cards = {c.id: c for c in R.list_cards()}
    assert set(cards) >= ISSUE_IDS
    for mid in R.ZOO:
        card, w = cards[mid], get_model_weights(mid).DEFAULT
        assert card.categories == tuple(w.meta["categories"])
        assert card.keypoint_names == tuple(w.meta.get("keypoint_names", ()))
        assert card.weights_url == w.url and w.url.endswith("/" + (card.weights_file or "?"))
        assert card.weights_source == "torchvision" and R.weight_state(card) == "needs download"
        assert card.metrics and card.file_size_mb and card.file_size_mb > 1
    assert cards["keypointrcnn_resnet50_fpn"].task == "keypoint" and len(cards["keypointrcnn_resnet50_fpn"].skeleton) == 19
    assert cards["maskrcnn_resnet50_fpn"].task == "instance" and cards["fcn_resnet50"].task == "semantic"
    assert cards["fcn_resnet50"].categories[0] == "__background__" and len(cards["fcn_resnet50"].categories) == 21


def test_unknown_model_points_to_models_command() -> None:
    with pytest.raises(SegviewerError, match=r"unknown model 'no_such_net'.*segviewer models"):
        R.get_card("no_such_net")


def test_weight_state_cached_when_file_is_in_hub_cache(hub_checkpoints: Path) -> None:
    card = R.get_card("lraspp_mobilenet_v3_large")
    assert R.weight_state(card) == "needs download"
    hub_checkpoints.mkdir(parents=True)
    (hub_checkpoints / str(card.weights_file)).write_bytes(b"x")
    assert R.weight_state(card) == "cached"


ADAPTER_MODULE = '''
class EchoAdapter:
    def __init__(self, card):
        self.card = card
        self.loaded = False
        self.device = None
    def load(self, device, weights=None, progress=None):
        self.loaded, self.device = True, device
    def predict(self, image, params=None, timings=None):
        raise NotImplementedError
'''


@pytest.fixture
def models_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "echo_adapter_mod.py").write_text(ADAPTER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SEGVIEWER_MODELS", str(folder))
    (folder / "shapes_fcn.toml").write_text(textwrap.dedent('''
        id = "shapes_fcn"
        task = "semantic"
        family = "FCN-8s, tiny VGG, trained on the shapes world"
        adapter = "echo_adapter_mod:EchoAdapter"
        categories = ["sky", "grass", "circle"]
        isthing = [false, false, true]
        input_size = [256, 256]
        checkpoint = "shapes_fcn.pt"
        sha256 = "abc123"
        file_size_mb = 1.5
        description = "a test card"
        [training]
        command = "segviewer train fcn"
        seed = 0
        [metrics]
        miou = 0.81
    '''))
    return folder


def test_bundled_card_is_read_and_listed(models_folder: Path) -> None:
    assert R.models_dir() == models_folder.resolve()
    card = R.get_card("shapes_fcn")
    assert card.task == "semantic" and card.categories == ("sky", "grass", "circle")
    assert card.isthing == (False, False, True) and card.input_size == (256, 256)
    assert card.weights_source == "bundled" and card.weights_file == "shapes_fcn.pt" and card.sha256 == "abc123"
    assert card.metrics == {"miou": 0.81} and card.extra["training"] == {"command": "segviewer train fcn", "seed": 0}
    assert card.extra["checkpoint_path"] == str((models_folder / "shapes_fcn.pt").resolve())
    assert R.weight_state(card) == "missing"
    (models_folder / "shapes_fcn.pt").write_bytes(b"weights")
    assert R.weight_state(card) == "bundled"
    assert [c.id for c in R.list_cards()][-1] == "shapes_fcn"


def test_create_adapter_imports_the_cards_class(models_folder: Path) -> None:
    adapter = R.create_adapter("shapes_fcn")
    assert isinstance(adapter, ModelAdapter) and type(adapter).__name__ == "EchoAdapter"
    assert adapter.card.weights_source == "bundled"
    assert R.create_adapter("shapes_fcn", random_init=True).card.weights_source == "none"
    det = R.create_adapter("ssdlite320_mobilenet_v3_large", random_init=True)
    assert isinstance(det, ModelAdapter) and not det.loaded and det.card.weights_source == "none"


def test_broken_cards_are_reported_not_fatal(models_folder: Path) -> None:
    (models_folder / "broken.toml").write_text('id = "broken"\ntask = "semantic"\n')
    (models_folder / "badtask.toml").write_text(
        'id = "badtask"\ntask = "depth"\nfamily = "x"\nadapter = "m:C"\ncategories = ["a"]\n')
    (models_folder / "dup.toml").write_text(
        'id = "fcn_resnet50"\ntask = "semantic"\nfamily = "x"\nadapter = "m:C"\ncategories = ["a"]\n')
    (models_folder / "notoml.toml").write_text("id = [unclosed\n")
    problems = R.bundled_card_problems()
    assert len(problems) == 4
    assert any("broken.toml" in p and "'family' is missing" in p for p in problems)
    assert any("badtask.toml" in p and "task 'depth'" in p for p in problems)
    assert any("dup.toml" in p and "already taken" in p for p in problems)
    assert any("notoml.toml" in p and "not valid TOML" in p for p in problems)
    ids = [c.id for c in R.list_cards()]
    assert "shapes_fcn" in ids and "broken" not in ids and ids.count("fcn_resnet50") == 1
    with pytest.raises(SegviewerError, match="broken.toml"):
        R.get_card("broken")


def test_repository_models_folder_cards_all_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGVIEWER_MODELS", raising=False)
    assert R.models_dir().name == "models"
    assert R.bundled_card_problems() == []
