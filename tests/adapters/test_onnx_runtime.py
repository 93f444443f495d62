"""The generic ONNX Runtime adapter: tiny torch modules exported to ONNX in a temp folder, run
through the adapter and compared with what they must give (computed independently here)."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import torch  # noqa: E402

from segviewer.adapters.base import ModelCard, PredictParams  # noqa: E402
from segviewer.adapters.onnx_runtime import OnnxAdapter, onnx_card  # noqa: E402
from segviewer.adapters.registry import create_adapter, get_card  # noqa: E402
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError  # noqa: E402
from segviewer.core.results import Detections, SemanticMap  # noqa: E402
from segviewer.synth.generate import generate_scene  # noqa: E402


def _export(module: torch.nn.Module, path: Path, size: tuple[int, int], outputs: list[str],
            dynamic: bool = False) -> Path:
    x = torch.zeros(1, 3, *size)
    axes = {"images": {2: "h", 3: "w"}} if dynamic else None
    torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, input_names=["images"], output_names=outputs,
                      dynamic_axes=axes)
    return path


class TinySeg(torch.nn.Module):
    """A 3-class semantic net at stride 2 (a torchvision-style logits output)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_semantic_layout_matches_the_torch_module(tmp_path: Path, image: np.ndarray) -> None:
    net = TinySeg()
    path = _export(net, tmp_path / "seg.onnx", (48, 64), ["logits"])
    card = onnx_card("tiny_seg", path, "semantic", ("sky", "grass", "road"), resize="stretch",
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    ad = OnnxAdapter(card)
    ad.load("cpu")
    res = ad.predict(image)
    assert isinstance(res, SemanticMap) and res.categories == ("sky", "grass", "road")
    assert res.labels.shape == image.shape[:2] and res.probs is not None
    # the reference: the same preprocessing in torch, the module, a bilinear upsample, argmax
    import torch.nn.functional as F

    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(48, 64), mode="bilinear", align_corners=False)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        lg = F.interpolate(net(x), size=image.shape[:2], mode="bilinear", align_corners=False)[0]
    want = lg.argmax(0).numpy()
    # cv2's and torch's downscaling of the input differ by rounding only: labels agree almost everywhere
    assert (res.labels == want).mean() > 0.97
    np.testing.assert_allclose(res.probs.sum(0), 1.0, atol=1e-5)


def test_dynamic_input_is_fed_the_image_as_it_is(tmp_path: Path, image: np.ndarray) -> None:
    path = _export(TinySeg(), tmp_path / "dyn.onnx", (48, 64), ["logits"], dynamic=True)
    ad = OnnxAdapter(onnx_card("dyn", path, "semantic", resize="none"))
    ad.load("cpu")
    res = ad.predict(image, PredictParams(extras=False))
    assert res.labels.shape == image.shape[:2] and res.probs is None
    assert ad.card.categories == ()  # no names anywhere: the map's are generated
    assert res.categories == ("class 0", "class 1", "class 2")


class FixedYoloSeg(torch.nn.Module):
    """Outputs chosen by the test, laid out as Ultralytics' YOLO-seg export: predictions
    (1, 4 + C + M, A) with cx cy w h in input pixels, class scores, mask coefficients; protos
    (1, M, mh, mw)."""

    def __init__(self, pred: np.ndarray, protos: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("pred", torch.from_numpy(pred)[None])
        self.register_buffer("protos", torch.from_numpy(protos)[None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x.mean() * 0
        return self.pred + z, self.protos + z


def _yolo_seg(tmp_path: Path) -> Path:
    # input 64 x 64; the 48 x 64 image is letterboxed at scale 1 with 8 rows of padding on top
    c, m, a = 2, 1, 4
    pred = np.zeros((4 + c + m, a), np.float32)

    def anchor(i: int, xyxy: tuple[float, float, float, float], cls: int, score: float) -> None:
        x0, y0, x1, y1 = xyxy
        pred[:4, i] = ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
        pred[4 + cls, i] = score
        pred[4 + c, i] = 1.0  # one mask coefficient: the mask is the single prototype

    anchor(0, (10, 18, 50, 48), 0, 0.9)  # image box (10, 10, 50, 40)
    anchor(1, (11, 19, 51, 49), 0, 0.8)  # same class, IoU > 0.7 with anchor 0: suppressed
    anchor(2, (12, 20, 52, 50), 1, 0.7)  # other class, same place: kept (class-aware NMS)
    anchor(3, (0, 8, 20, 28), 0, 0.01)  # below the score threshold
    protos = np.full((m, 16, 16), -10.0, np.float32)
    protos[:, :, :8] = 10.0  # the left half of the input (x < 32) is inside every mask
    return _export(FixedYoloSeg(pred, protos), tmp_path / "yolo_seg.onnx", (64, 64), ["output0", "output1"])


def test_yolo_seg_layout_decodes_boxes_nms_and_masks(tmp_path: Path) -> None:
    path = _yolo_seg(tmp_path)
    card = onnx_card("yolo", path, "yolo-seg", ("person", "car"))
    ad = create_adapter(card)
    ad.load("cpu")
    img = np.zeros((48, 64, 3), np.uint8)
    det = ad.predict(img, PredictParams(min_score=0.25))
    assert isinstance(det, Detections) and det.masks is not None
    assert det.names == ("person", "car")
    np.testing.assert_allclose(det.scores, [0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(det.boxes, [[10, 10, 50, 40], [12, 12, 52, 42]], atol=1e-4)
    want = np.zeros((48, 64), bool)
    want[10:40, 10:32] = True  # inside the box and left of input x = 32
    np.testing.assert_array_equal(det.masks.full(0), want)
    want2 = np.zeros((48, 64), bool)
    want2[12:42, 12:32] = True
    np.testing.assert_array_equal(det.masks.full(1), want2)
    assert len(ad.predict(img, PredictParams(min_score=0.005))) == 3  # the weak anchor passes a low threshold


def test_yolo_layout_names_from_ultralytics_metadata(tmp_path: Path) -> None:
    import onnx

    path = _yolo_seg(tmp_path)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"names": "{0: 'person', 1: 'bicycle'}", "stride": "32"})
    onnx.save(model, str(path))
    ad = OnnxAdapter(onnx_card("yolo", path, "yolo-seg"))
    ad.load("cpu")
    assert ad.card.categories == ("person", "bicycle")


class FixedDetections(torch.nn.Module):
    """A detection export with NMS in the graph: boxes (N, 4) xyxy in input pixels, scores, labels."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("boxes", torch.tensor([[8.0, 8.0, 24.0, 16.0], [0.0, 0.0, 32.0, 32.0], [4.0, 4.0, 6.0, 6.0]]))
        self.register_buffer("scores", torch.tensor([0.3, 0.9, 0.02]))
        self.register_buffer("labels", torch.tensor([1, 2, 1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = x.mean() * 0
        return self.boxes + z, self.scores + z, self.labels + z.long()


def test_detection_layout_maps_stretched_boxes_back_and_sorts(tmp_path: Path) -> None:
    path = _export(FixedDetections(), tmp_path / "det.onnx", (32, 32), ["boxes", "scores", "labels"])
    card = onnx_card("det", path, "detection", ("__background__", "cat", "dog"), resize="stretch")
    ad = OnnxAdapter(card)
    ad.load("cpu")
    det = ad.predict(np.zeros((64, 128, 3), np.uint8), PredictParams(min_score=0.1))
    assert det.names == ("dog", "cat")  # best first; the 0.02 box is below the threshold
    np.testing.assert_allclose(det.boxes, [[0, 0, 128, 64], [32, 16, 96, 32]], atol=1e-4)
    assert len(ad.predict(np.zeros((64, 128, 3), np.uint8), PredictParams(min_score=0.1, max_detections=1))) == 1


class FixedMaskDetections(torch.nn.Module):
    """Two detections with mask probabilities over a 32 x 32 input, outputs in torchvision's order
    (boxes, labels, scores, masks) and named as torchvision's export names them."""

    def __init__(self) -> None:
        super().__init__()
        masks = torch.zeros(2, 1, 32, 32)
        masks[0, 0, 8:16, 8:24] = 1.0  # inside detection 0's box
        masks[0, 0, 24:28, 8:24] = 0.4  # below the 0.5 threshold
        masks[1, 0, :, :16] = 0.6
        self.register_buffer("boxes", torch.tensor([[8.0, 8.0, 24.0, 20.0], [0.0, 0.0, 16.0, 32.0]]))
        self.register_buffer("labels", torch.tensor([1, 2]))
        self.register_buffer("scores", torch.tensor([0.9, 0.8]))
        self.register_buffer("masks", masks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = x.mean() * 0
        return self.boxes + z, self.labels + z.long(), self.scores + z, self.masks + z


def test_detection_masks_by_output_name_map_back_through_the_resize(tmp_path: Path) -> None:
    path = _export(FixedMaskDetections(), tmp_path / "mdet.onnx", (32, 32), ["boxes", "labels", "scores", "masks"])
    ad = OnnxAdapter(onnx_card("mdet", path, "detection", ("__background__", "cat", "dog"), resize="stretch"))
    ad.load("cpu")
    det = ad.predict(np.zeros((64, 128, 3), np.uint8), PredictParams(min_score=0.1))
    # roles bound by name, not by position (torchvision puts labels before scores)
    assert det.names == ("cat", "dog") and det.masks is not None
    np.testing.assert_allclose(det.scores, [0.9, 0.8], atol=1e-6)
    # the reference: torch's bilinear resize of the probabilities to the image (the input was
    # stretched x2 down and x4 across), thresholded at 0.5
    import torch.nn.functional as F

    probs = F.interpolate(FixedMaskDetections().masks, size=(64, 128), mode="bilinear", align_corners=False)[:, 0]
    want = (probs >= 0.5).numpy()
    assert want[0].sum() > 0.9 * 16 * 64 and not want[0, 48:56].any()  # the 0.4 rows stay out
    np.testing.assert_array_equal(det.masks.full(0), want[0])
    np.testing.assert_array_equal(det.masks.full(1), want[1])


@pytest.mark.slow
def test_exported_torchvision_mask_rcnn_gives_what_the_torch_module_gives(tmp_path: Path, image: np.ndarray) -> None:
    """The bundled shapes Mask R-CNN (a torchvision MaskRCNN) exported as torchvision documents it:
    a (3, H, W) image input, resizing and normalising inside the graph, pasted mask probabilities."""
    ref = create_adapter("shapes_maskrcnn")
    ref.load("cpu")
    net = ref.module.eval()
    scene = generate_scene(7, (96, 128)).image
    path = tmp_path / "maskrcnn.onnx"
    with warnings.catch_warnings():  # the tracer's warnings about torchvision's python-side shapes
        warnings.simplefilter("ignore")
        torch.onnx.export(net, ([torch.rand(3, 96, 128)],), str(path), dynamo=False, opset_version=11,
                          input_names=["image"], output_names=["boxes", "labels", "scores", "masks"],
                          dynamic_axes={"image": {1: "h", 2: "w"},
                                        **{k: {0: "n"} for k in ("boxes", "labels", "scores", "masks")}})
    ad = OnnxAdapter(onnx_card("mrcnn_onnx", path, "detection", ref.card.categories, resize="none"))
    ad.load("cpu")
    det = ad.predict(scene, PredictParams(min_score=0.3))
    with torch.no_grad():
        want = net([torch.from_numpy(scene).permute(2, 0, 1).float() / 255])[0]
    keep = want["scores"].numpy() >= 0.3
    assert keep.sum() >= 2 and len(det) == keep.sum()
    np.testing.assert_allclose(det.scores, want["scores"].numpy()[keep], atol=1e-4)
    np.testing.assert_allclose(det.boxes, want["boxes"].numpy()[keep], atol=1e-2)
    assert det.names == tuple(ref.card.categories[i] for i in want["labels"].numpy()[keep])
    full = want["masks"].numpy()[keep, 0] >= 0.5
    for i in range(len(det)):
        assert (det.masks.full(i) == full[i]).mean() > 0.999


def test_cuda_device_falls_back_to_the_cpu_provider_when_onnxruntime_has_none(tmp_path: Path) -> None:
    path = _export(FixedDetections(), tmp_path / "det.onnx", (32, 32), ["boxes", "scores", "labels"])
    ad = OnnxAdapter(onnx_card("det", path, "detection", ("a", "b", "c")))
    ad.load("cuda")
    want = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider"
    assert ad.providers[0] == want


def test_toml_card_with_an_onnx_table_loads_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  image: np.ndarray) -> None:
    models = tmp_path / "models"
    models.mkdir()
    _export(TinySeg(), models / "tiny.onnx", (48, 64), ["logits"])
    (models / "tiny_onnx.toml").write_text(textwrap.dedent('''
        id = "tiny_onnx"
        task = "semantic"
        family = "a tiny exported net"
        adapter = "segviewer.adapters.onnx_runtime:OnnxAdapter"
        categories = ["a", "b", "c"]
        checkpoint = "tiny.onnx"
        [onnx]
        layout = "semantic"
        resize = "stretch"
    '''))
    monkeypatch.setenv("SEGVIEWER_MODELS", str(models))
    card = get_card("tiny_onnx")
    assert card.extra["onnx"]["layout"] == "semantic" and card.extra["needs_extra"] == "onnx"
    ad = create_adapter("tiny_onnx")
    ad.load("cpu")
    assert ad.predict(image).categories == ("a", "b", "c")


def test_bad_cards_and_files_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match=r"layout 'yolov9' is not one of"):
        OnnxAdapter(ModelCard(id="x", task="semantic", family="f", categories=(), extra={"onnx": {"layout": "yolov9"}}))
    with pytest.raises(SegviewerError, match=r"unknown keys colour"):
        OnnxAdapter(onnx_card("x", None, "semantic", colour="red"))
    with pytest.raises(WeightsUnavailableError, match=r"no random initialisation"):
        OnnxAdapter(onnx_card("x", None, "semantic")).load("cpu")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointMismatchError, match=r"junk.onnx cannot be opened by ONNX Runtime"):
        OnnxAdapter(onnx_card("x", junk, "semantic")).load("cpu")
    path = _export(TinySeg(), tmp_path / "seg.onnx", (48, 64), ["logits"])
    with pytest.raises(CheckpointMismatchError, match=r"has no output for protos"):
        OnnxAdapter(onnx_card("x", path, "yolo-seg", outputs={"predictions": "logits", "protos": "masks"})).load("cpu")
