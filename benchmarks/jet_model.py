"""The trained jet tagger the benchmarks measure: trained with examples/jet_tagger/train.py when
its file does not exist yet."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "build/jet_tagger/jet_tagger.keras"


def ensure_model(path=DEFAULT_MODEL):
    """``path`` (a .keras file), training the example jet tagger into its folder first if needed."""
    path = Path(path)
    if not path.exists():
        print(f"training the jet tagger into {path.parent} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "examples/jet_tagger/train.py"), "--out", str(path.parent)],
                       check=True)
    return path
