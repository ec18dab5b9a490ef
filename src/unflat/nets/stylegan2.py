"""StyleGAN2 building blocks: mapping network with class conditioning, modulated convolutions,
synthesis blocks (with the optional non-upsampling "extra" blocks of the ImageNet tri-plane paper)
and a class-conditional residual discriminator with minibatch standard deviation.

Conventions follow StyleGAN2/EG3D: equalised learning rate (weights stored N(0,1)/lr_mul and scaled
at run time), leaky ReLU with gain sqrt(2), [1,3,3,1] resampling filters (bilinear upsampling is the
same filter), skip-connected ToRGB outputs in the generator and a residual discriminator.
Everything is plain PyTorch (no custom CUDA ops), so autocast(bf16), channels_last and torch.compile
apply directly.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)
NoiseMode = Literal["random", "const", "none"]


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def lrelu(x: Tensor, clamp: float | None = None) -> Tensor:
    """Leaky ReLU (0.2) scaled by sqrt(2) to keep unit variance; optional symmetric clamp."""
    x = F.leaky_relu(x, 0.2) * SQRT2
    return x.clamp(-clamp, clamp) if clamp else x


# ---------------------------------------------------------------------------------------------
# Equalised-learning-rate layers
# ---------------------------------------------------------------------------------------------
class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: y = x @ (W * lr_mul/sqrt(in)).T + b * lr_mul."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.bias_gain
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation else x


def downsample2x(x: Tensor) -> Tensor:
    """[B,C,H,W] -> [B,C,H/2,W/2] with StyleGAN's [1,3,3,1] filter.

    [1,3,3,1]/8 = [1,2,1]/4 (a blur) followed by a 2x2 mean; written with slices and avg_pool2d so that
    R1's double backward stays cheap (grouped-convolution double backward is slow on CPU).
    """
    if RESAMPLE_WITHOUT_SCATTER and torch.compiler.is_compiling():
        p = _pad_replicate_by_cat(x)
    else:
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    p = (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) * 0.25
    p = (p[..., :-2] + 2 * p[..., 1:-1] + p[..., 2:]) * 0.25
    return F.avg_pool2d(p, 2)


_INTERPOLATE_MAX_ELEMENTS = 2**31 - 1
"""PyTorch's channels-last bilinear upsampling on CUDA refuses outputs of INT_MAX elements or more
(a batch of 128 tri-planes at 256^2 x 96 channels is 2^31)."""


RESAMPLE_WITHOUT_SCATTER = True
"""Under torch.compile, write 2x bilinear upsampling as shifted slices (``_upsample2x_by_slices``) instead of
``F.interpolate``, and the downsampling filter's replicate padding as concatenated edge slices
(``_pad_replicate_by_cat``) instead of ``F.pad(mode="replicate")``. Inductor lowers interpolate's backward to
scatter-adds (``_unsafe_index_put``, ~17% of a compiled tri-plane GAN step on an H100) and runs
``replication_pad2d_backward`` as its own kernel (~5%; docs/performance.md); the slices' backward is pointwise
and fuses. Same values and gradients. Benchmarks set False for an A/B in one process; eager mode always uses the
single aten kernels."""


def _pad_replicate_by_cat(x: Tensor) -> Tensor:
    """``F.pad(x, (1, 1, 1, 1), mode="replicate")`` of [B,C,H,W] by concatenating the edge rows/columns."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2)
    return torch.cat([x[..., :1], x, x[..., -1:]], 3)


def _upsample2x_by_slices(x: Tensor) -> Tensor:
    """Exactly bilinear 2x with half-pixel centres and clamped edges: output 2i = 0.25 x[i-1] + 0.75 x[i],
    2i+1 = 0.75 x[i] + 0.25 x[i+1] along each axis (x[-1] := x[0], x[n] := x[n-1]). Keeps channels-last."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()

    def along(t: Tensor, dim: int) -> Tensor:
        n = t.shape[dim]
        prev = torch.cat([t.narrow(dim, 0, 1), t.narrow(dim, 0, n - 1)], dim)
        nxt = torch.cat([t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim)
        even, odd = 0.25 * prev + 0.75 * t, 0.75 * t + 0.25 * nxt
        shape = list(t.shape)
        shape[dim] = 2 * n
        return torch.stack([even, odd], dim + 1).reshape(shape)

    out = along(along(x, 2), 3)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def upsample2x(x: Tensor) -> Tensor:
    """[B,C,H,W] -> [B,C,2H,2W]; bilinear with half-pixel centres is StyleGAN's [1,3,3,1] upsampling filter.
    Large batches are upsampled in batch chunks under PyTorch's INT_MAX output limit."""
    if RESAMPLE_WITHOUT_SCATTER and torch.compiler.is_compiling():
        return _upsample2x_by_slices(x)
    per_item = 4 * x[0].numel()
    if len(x) > 1 and len(x) * per_item > _INTERPOLATE_MAX_ELEMENTS:
        step = max(1, _INTERPOLATE_MAX_ELEMENTS // per_item)
        return torch.cat([upsample2x(part) for part in x.split(step)])
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate, optional [1,3,3,1] downsampling before a stride-1 conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: bool = False, down: bool = False, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        if self.down:
            x = downsample2x(x)
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.activation:
            return lrelu(x, self.conv_clamp * gain if self.conv_clamp else None) * gain
        x = x * gain
        return x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain) if self.conv_clamp else x


# ---------------------------------------------------------------------------------------------
# Mapping network
# ---------------------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z [B,z_dim] (+ class one-hot/soft labels c [B,c_dim]) -> ws [B,num_ws,w_dim].

    Class conditioning as in StyleGAN2-ADA/EG3D: c is embedded by a linear layer (on a one-hot vector
    this is a learned per-class embedding; soft labels interpolate between classes), both parts are
    normalised to unit second moment and concatenated before the MLP. Keeps a running mean of w
    (``w_avg``) for the truncation trick. z_dim = 0 gives a pure class embedding (discriminator use).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = EqualLinear(c_dim, w_dim) if c_dim > 0 else None
        features = (z_dim + (w_dim if c_dim > 0 else 0))
        layers = []
        for i in range(num_layers):
            layers.append(EqualLinear(features if i == 0 else w_dim, w_dim, activation=True, lr_multiplier=lr_multiplier))
        self.layers = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        if update_w_avg and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cut] = self.w_avg.to(ws.dtype).lerp(ws[:, :cut], truncation_psi)
        return ws


# ---------------------------------------------------------------------------------------------
# Modulated convolution and synthesis
# ---------------------------------------------------------------------------------------------
def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, padding: int = 0) -> Tensor:
    """StyleGAN2 weight (de)modulation written as input scaling -> shared conv -> output scaling.

    x: [B,I,H,W], weight: [O,I,k,k], styles: [B,I] -> [B,O,H,W]. Mathematically identical to the
    per-sample grouped convolution, but runs as one ordinary (cuDNN, channels_last, bf16) convolution.
    """
    x = x * styles.to(x.dtype)[:, :, None, None]
    out = F.conv2d(x, weight.to(x.dtype) if not torch.is_autocast_enabled() else weight, padding=padding)
    if demodulate:
        # sum_{i,k} (w_oik s_i)^2 = (s^2) @ (sum_k w_oik^2).T, computed in fp32 for accuracy.
        dcoefs = (styles.float().square() @ weight.float().square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
        out = out * dcoefs.to(out.dtype)[:, :, None, None]
    return out


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsampling) + per-pixel noise + bias + lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        self.up = up
        self.resolution = resolution
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor, w: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        styles = self.affine(w) * self.weight_gain
        if self.up:
            x = upsample2x(x)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, padding=1)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype) * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        x = x + self.bias.to(x.dtype)[None, :, None, None]
        return lrelu(x, self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation: features -> image channels (skip architecture)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.to(x.dtype)[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp else x


class SynthesisBlock(nn.Module):
    """One StyleGAN2 synthesis block: (const input | 2x upsampling conv | plain conv) + conv + ToRGB.

    kind: "const" (the 4x4 first block), "up" (doubles the resolution) or "same" (the ImageNet
    tri-plane paper's extra block: same structure, no upsampling). Consumes ``num_conv + 1`` w's;
    its ToRGB output is added to the (upsampled) running image.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 kind: Literal["const", "up", "same"], conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        self.kind = kind
        self.resolution = resolution
        if kind == "const":
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=kind == "up", conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if kind == "const" else 2
        self.num_ws = self.num_conv + 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: NoiseMode = "random") -> tuple[Tensor, Tensor]:
        """x: [B,I,r,r] features (None for the const block), img: running image or None, ws: [B,num_ws,w_dim]."""
        i = 0
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            if torch.is_autocast_enabled():
                x = x.to(torch.get_autocast_dtype(ws.device.type))
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            i = 1
        x = self.conv1(x, ws[:, i], noise_mode)
        y = self.torgb(x, ws[:, i + 1])
        if img is None:
            img = y
        else:
            img = (upsample2x(img) if self.kind == "up" else img) + y.to(img.dtype)
        return x, img


def synthesis_channels(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


class SynthesisNetwork(nn.Module):
    """ws [B,num_ws,w_dim] -> image [B,img_channels,R,R] through blocks 4, 8, ..., R.

    extra_blocks: after every resolution's block add a non-upsampling block (the paper's deeper
    backbone, roughly doubling the parameters).
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, extra_blocks: bool = False, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        blocks: list[SynthesisBlock] = []
        res, prev = 4, 0
        while res <= img_resolution:
            ch = synthesis_channels(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(prev, ch, w_dim, res, img_channels, "const" if res == 4 else "up", conv_clamp))
            if extra_blocks:
                blocks.append(SynthesisBlock(ch, ch, w_dim, res, img_channels, "same", conv_clamp))
            prev, res = ch, res * 2
        self.blocks = nn.ModuleList(blocks)
        # Like StyleGAN2, a block's ToRGB shares its w with the next block's first conv.
        self.num_ws = sum(b.num_conv for b in blocks) + 1

    def forward(self, ws: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        x = img = None
        idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, idx: idx + block.num_ws], noise_mode)
            idx += block.num_conv
        return img


# ---------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    """Residual block: (FromRGB) conv3x3 -> conv3x3 with 2x downsampling, plus a 1x1 downsampled skip."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, img_channels: int,
                 first: bool, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        self.fromrgb = EqualConv2d(img_channels, mid_channels, 1, activation=True, conv_clamp=conv_clamp) if first else None
        self.conv0 = EqualConv2d(mid_channels, mid_channels, 3, activation=True, conv_clamp=conv_clamp)
        self.conv1 = EqualConv2d(mid_channels, out_channels, 3, activation=True, down=True, conv_clamp=conv_clamp)
        self.skip = EqualConv2d(mid_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class MinibatchStd(nn.Module):
    """Appends the standard deviation across groups of samples as extra feature channels."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:  # a group size that divides the batch
            g -= 1
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(2, 3, 4))  # [B/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator with class conditioning by projection.

    images: [B,in_channels,R,R] (e.g. 6 = EG3D's dual discrimination of SR image + upsampled raw
    image; 3dgp passes extra depth channels). class_onehot: [B,num_classes] or None. The class is
    embedded by a mapping network ("cmap") and the output is <features, cmap>/sqrt(dim), the
    StyleGAN2-ADA/EG3D projection conditioning. No camera conditioning.
    feature_dim > 0 adds a linear head on the penultimate features (e.g. 3dgp's distillation target).
    Returns logits [B,1], or (logits, features [B,feature_dim]) with return_features.
    """

    def __init__(self, resolution: int, in_channels: int = 6, num_classes: int = 0, channel_base: int = 32768,
                 channel_max: int = 512, mapping_layers: int = 8, mbstd_group_size: int = 4,
                 feature_dim: int = 0, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.resolution, self.in_channels, self.num_classes = resolution, in_channels, num_classes
        ch = lambda r: synthesis_channels(r, channel_base, channel_max)  # noqa: E731
        blocks = []
        res = resolution
        while res > 4:
            blocks.append(DiscriminatorBlock(ch(res), ch(res), ch(res // 2), in_channels, first=res == resolution, conv_clamp=conv_clamp))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        c4 = ch(4)
        self.fromrgb4 = EqualConv2d(in_channels, c4, 1, activation=True) if resolution == 4 else None
        self.mbstd = MinibatchStd(mbstd_group_size, 1)
        self.conv = EqualConv2d(c4 + 1, c4, 3, activation=True, conv_clamp=conv_clamp)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.cmap_dim = c4 if num_classes > 0 else 0
        self.out = EqualLinear(c4, self.cmap_dim if num_classes > 0 else 1)
        self.mapping = (MappingNetwork(0, num_classes, self.cmap_dim, None, num_layers=mapping_layers, w_avg_beta=None)
                        if num_classes > 0 else None)
        self.feature_head = EqualLinear(c4, feature_dim) if feature_dim > 0 else None

    def features(self, images: Tensor) -> list[Tensor]:
        """Intermediate activations after each block (used e.g. as a perceptual feature space)."""
        x = images if self.fromrgb4 is None else self.fromrgb4(images)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, images: Tensor, class_onehot: Tensor | None = None, return_features: bool = False):
        x = self.features(images)[-1] if self.blocks else self.fromrgb4(images)
        x = self.conv(self.mbstd(x))
        h = self.fc(x.flatten(1))
        out = self.out(h)
        if self.mapping is not None:
            if class_onehot is None:
                raise ValueError("this discriminator is class-conditional: pass class_onehot")
            cmap = self.mapping(None, class_onehot)
            out = (out.float() * cmap.float()).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        out = out.float()
        if return_features:
            if self.feature_head is None:
                raise ValueError("return_features needs feature_dim > 0")
            return out, self.feature_head(h).float()
        return out
