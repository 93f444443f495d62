"""analysis never imports render, not even inside a function (DESIGN.md: every arrow points down)."""

import ast
import subprocess
import sys
from pathlib import Path

ANALYSIS = Path(__file__).resolve().parents[2] / "segviewer" / "analysis"


def _segviewer_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("segviewer.")}


def test_no_analysis_module_imports_render_or_ui() -> None:
    offenders = {p.name: sorted(m for m in _segviewer_imports(p) if m.split(".")[1] in ("render", "ui"))
                 for p in sorted(ANALYSIS.glob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}


def test_image_report_with_errors_loads_no_render_module() -> None:
    code = (
        "import sys, numpy as np\n"
        "from segviewer.analysis.evaluation import image_report, MergeParams\n"
        "from segviewer.core.groundtruth import GroundTruth\n"
        "from segviewer.core.results import Detections, MaskSet, SemanticMap\n"
        "m = np.zeros((1, 8, 8), bool); m[0, 2:6, 2:6] = True\n"
        "d = Detections((8, 8), [[2, 2, 6, 6]], [0.9], [0], ('a',), masks=MaskSet.from_full(m))\n"
        "s = SemanticMap(np.zeros((8, 8), np.uint8), ('a',))\n"
        "ev = image_report(d, s, GroundTruth(semantic=s, instances=d), MergeParams(), want_ap=False)\n"
        "assert ev.errors is not None and ev.semantic_errors is not None\n"
        "print(sorted(k for k in sys.modules if k.startswith('segviewer.render')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
