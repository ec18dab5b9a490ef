"""IS-Net (DIS) object masks with onnxruntime on the CPU, from weights installed by ``bash scripts/setup.sh segment``.

The model file is found in :func:`unflat.data.isnet_weights.weights_dir` (``medium`` preferred over
``small`` when both are there; ``$UNFLAT_ISNET_MODEL`` names one). Before its first use in a process the
file's sha256 is checked against the record written at install; a mismatch is refused with one line.
Nothing is ever downloaded here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from unflat.data.isnet_weights import check, weights_dir
from unflat.errors import UserError

PREFERENCE = ("medium", "small")  # fp16 before 8-bit when both are installed
_sessions: dict[tuple[str, int, int], object] = {}


def onnxruntime_available() -> bool:
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def find_model(directory: Path | None = None) -> Path | None:
    """The installed model to use (its ``.onnx`` with a ``.json`` record beside it), or None."""
    directory = Path(directory) if directory is not None else weights_dir()
    wanted = os.environ.get("UNFLAT_ISNET_MODEL")
    for name in (wanted,) if wanted else PREFERENCE:
        path = directory / f"{name}.onnx"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    return None


def isnet_available(directory: Path | None = None) -> bool:
    return onnxruntime_available() and find_model(directory) is not None


def load_session(path: Path):
    """An onnxruntime CPU session of ``path`` after checking its sha256 against ``path.with_suffix('.json')``."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _sessions:
        return _sessions[key]
    check(path)  # refuses a file changed since install
    if not onnxruntime_available():
        raise UserError("IS-Net segmentation needs onnxruntime: pip install 'unflat[segment]' "
                        "(or bash scripts/setup.sh segment)")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initialisers on every load
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _sessions[key] = session
    return session


def input_size(session) -> tuple[int, int]:
    """(height, width) the model takes; 1024x1024 when its input shape is dynamic."""
    shape = session.get_inputs()[0].shape
    h, w = shape[2], shape[3]
    return (h if isinstance(h, int) else 1024, w if isinstance(w, int) else 1024)


def isnet_probability(rgb: np.ndarray, model: Path | None = None) -> np.ndarray:
    """uint8 RGB [H,W,3] -> the model's foreground probability float32 [H,W] in [0,1].

    As DIS and the npm package do: resize to the model's input (bilinear), ``pixel / 255 - 0.5``, NCHW;
    the first output, resized back to the image's size.
    """
    from PIL import Image

    path = model or find_model()
    if path is None:
        raise UserError(f"no IS-Net model installed in {weights_dir()}: run bash scripts/setup.sh segment "
                        "(or use --segmenter grabcut / colour)")
    session = load_session(path)
    h, w = input_size(session)
    x = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR), np.float32) / 255.0 - 0.5
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])}
    out = session.run([session.get_outputs()[0].name], feed)[0].reshape(h, w).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    back = Image.fromarray(out).resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR)
    return np.asarray(back, np.float32)
