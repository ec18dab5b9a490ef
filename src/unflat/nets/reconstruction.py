"""Networks of the progressive single-image reconstruction method (Dundar et al.).

- :class:`ImageEncoder`: 7 stride-2 conv blocks (conv + ReLU) -> a feature vector.
- :class:`EfficientNetEncoder`: the same contract through a fine-tuned ImageNet EfficientNet-Lite0.
- :class:`UVDecoder`: feature vector (+ Gaussian latent) -> a UV deformation map and a UV texture map.
  A linear layer maps [features, latent] to a style vector that drives adaptive instance
  normalisation (AdaIN) in every decoder block; blocks are two 3x3 convs, each followed by AdaIN
  and LeakyReLU, with a skip connection, then bilinear x2 upsampling. Two shared blocks, then a
  mesh branch (blocks + a 3-channel conv -> xyz offsets) and a texture branch (blocks -> mirror ->
  one block -> 3-channel conv -> RGB). With ``symmetric`` the maps are predicted at half height
  and mirrored (see :mod:`unflat.geometry.sphere_template`: flipping the map's rows mirrors the
  object about X = 0, so the x offset changes sign); the texture's last block after the mirror
  relaxes the symmetry, as in the paper.
- :class:`UVDiscriminator`: multi-scale, multi-view conditional projection discriminator on UV
  textures (input: texture + visibility mask + learnable positional embeddings; condition: the
  partial texture projected from the input view, embedded to a vector by convs + global pooling;
  score = patch logits + <condition embedding, patch features>).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unflat.nets.efficientnet import PooledEfficientNet  # its head width


def _channels(base: int, maximum: int, count: int, grow: bool = True) -> list[int]:
    """``count`` channel widths doubling from ``base`` (or halving from ``maximum``), capped."""
    if grow:
        return [min(base * 2**i, maximum) for i in range(count)]
    return [max(min(maximum // 2**i, maximum), base) for i in range(count)]


def _groups(channels: int, max_groups: int = 32, min_per_group: int = 4) -> int:
    """GroupNorm groups for ``channels``: the most (<= max_groups) that divide it with >= min_per_group channels each."""
    for groups in range(min(max_groups, channels // min_per_group), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def _kaiming(module: nn.Module, slope: float = 0.2) -> None:
    """Kaiming-normal weights (for a LeakyReLU of ``slope`` after it) and zero biases on every conv/linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _resized(images: Tensor, resolution: int) -> Tensor:
    """images [B,3,H,W] -> [B,3,resolution,resolution] (antialiased bilinear; unchanged when already that size)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)


class ImageEncoder(nn.Module):
    """images [B,3,R,R] in [-1,1] -> features [B, feature_dim].

    7 conv blocks (3x3 kernels; 3x3 keeps working down to 1x1 maps), channels doubling from
    ``base_channels`` up to ``max_channels``; the last map is flattened into a linear layer.

    normalised (the default): each block is conv -> GroupNorm -> LeakyReLU(0.2) with Kaiming
    init, blocks stride 2 only while the map is larger than ``min_size`` (so the flattened map
    keeps a coarse layout), and the feature vector is linear (no ReLU that can switch it off).
    Not normalised (``legacy``, the first implementation): conv -> ReLU with PyTorch's default
    init, stride 2 in every block, spatial size R / 128 (at least 1), ReLU on the features. At
    init that network shrinks the input-dependent part of its activations ~3x per block (see
    ``benchmarks/progressive_init_spread.py``), so its predictions barely follow the input.
    """

    def __init__(self, resolution: int, base_channels: int = 64, max_channels: int = 512,
                 num_blocks: int = 7, feature_dim: int = 512, normalised: bool = True, min_size: int = 4) -> None:
        super().__init__()
        widths = _channels(base_channels, max_channels, num_blocks)
        layers: list[nn.Module] = []
        in_ch = 3
        size = resolution
        for width in widths:
            stride = 2 if (not normalised or size > min_size) else 1
            if normalised:
                layers += [nn.Conv2d(in_ch, width, 3, stride=stride, padding=1, bias=False),
                           nn.GroupNorm(_groups(width), width), nn.LeakyReLU(0.2, inplace=True)]
            else:
                layers += [nn.Conv2d(in_ch, width, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]
            in_ch = width
            size = max(size // stride, 1) if normalised else max(size // 2, 1)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch * size * size, feature_dim)
        self.feature_dim = feature_dim
        self.resolution = resolution
        self.normalised = normalised
        if normalised:
            _kaiming(self.convs)
            nn.init.kaiming_normal_(self.fc.weight, nonlinearity="linear")
            nn.init.zeros_(self.fc.bias)

    def forward(self, images: Tensor) -> Tensor:
        images = _resized(images, self.resolution)
        features = self.fc(self.convs(images).flatten(1))
        return features if self.normalised else F.relu(features)


class EfficientNetEncoder(nn.Module):
    """images [B,3,R,R] in [-1,1] -> features [B, feature_dim], through an ImageNet EfficientNet-Lite0.

    The backbone (``unflat.pretrained.load_efficientnet_lite0``: its input scaling ``(rgb255 - 127) / 128`` is
    unflat's [-1,1] within 1/255) is fine-tuned, but stays in eval mode: its BatchNorm statistics and
    drop-connect keep their ImageNet behaviour whatever the batch. Its head map [B,1280,R/32,R/32] is reduced by a
    1x1 conv (GroupNorm, LeakyReLU) to ``reduced_channels`` and flattened into a linear layer, so the feature
    vector keeps the coarse layout of the object in the frame (its size and position: the scale cue). Images
    smaller than 32 px are upsampled to 32 (the backbone's stride).
    """

    def __init__(self, backbone: nn.Module, resolution: int, feature_dim: int = 512, reduced_channels: int = 128) -> None:
        super().__init__()
        resolution = max(resolution, 32)  # smaller inputs are upsampled to the backbone's stride
        self.backbone = backbone.requires_grad_(True)  # the loader hands it out frozen, for features
        self.reduce = nn.Sequential(nn.Conv2d(PooledEfficientNet.feature_dim, reduced_channels, 1, bias=False),
                                    nn.GroupNorm(_groups(reduced_channels), reduced_channels), nn.LeakyReLU(0.2, inplace=True))
        size = math.ceil(resolution / 32)
        self.fc = nn.Linear(reduced_channels * size * size, feature_dim)
        _kaiming(self.reduce)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="linear")
        nn.init.zeros_(self.fc.bias)
        self.feature_dim = feature_dim
        self.resolution = resolution

    def forward(self, images: Tensor) -> Tensor:
        images = _resized(images, self.resolution)
        return self.fc(self.reduce(self.backbone.extract_features(images)).flatten(1))

    def train(self, mode: bool = True) -> "EfficientNetEncoder":
        super().train(mode)
        self.backbone.train(False)  # ImageNet BatchNorm statistics and no drop-connect, in training too
        return self


class AdaIN(nn.Module):
    """Instance normalisation whose per-channel scale and bias come from a style vector.

    init_std: std of the affine map's weights times sqrt(style_dim), i.e. the std of the style's
    scale/bias per channel at init for a unit-RMS style (0 = the zero init of the first
    implementation, where the style has no effect until training moves the weights: with a
    starved input it may never)."""

    def __init__(self, channels: int, style_dim: int, init_std: float = 0.0) -> None:
        super().__init__()
        self.affine = nn.Linear(style_dim, 2 * channels)
        if init_std > 0:
            nn.init.normal_(self.affine.weight, std=init_std / math.sqrt(style_dim))
        else:
            nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        scale, bias = self.affine(style)[..., None, None].chunk(2, dim=1)
        return F.instance_norm(x, eps=1e-5) * (1 + scale) + bias


class StyleBlock(nn.Module):
    """Two (3x3 conv -> AdaIN -> LeakyReLU) layers with a skip connection; optional x2 upsampling after."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = True, adain_init_std: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm1 = AdaIN(out_ch, style_dim, adain_init_std)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = AdaIN(out_ch, style_dim, adain_init_std)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)
        self.upsample = upsample

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x), style), 0.2)
        h = F.leaky_relu(self.norm2(self.conv2(h), style), 0.2)
        out = (h + self.skip(x)) / math.sqrt(2)
        if self.upsample:
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False)
        return out


def mirror_rows(uv_map: Tensor, negate_channel: int | None = None) -> Tensor:
    """Half-height map [B,C,h,W] -> full map [B,C,2h,W]: the map above its upside-down copy.

    negate_channel: a channel whose sign flips in the mirrored half (the x offset of a deformation).
    """
    flipped = uv_map.flip(-2)
    if negate_channel is not None:
        sign = torch.ones(uv_map.shape[1], device=uv_map.device, dtype=uv_map.dtype)
        sign[negate_channel] = -1
        flipped = flipped * sign[None, :, None, None]
    return torch.cat([uv_map, flipped], dim=-2)


class UVDecoder(nn.Module):
    """features [B,F] (+ latent [B,Z]) -> (deformation [B,3,Dm,Dm], texture [B,3,T,T] in [-1,1]).

    start: width of the first feature map (height start/2 when symmetric, else start).
    Resolutions must be ``start * 2^k`` with k >= 2 (the two shared blocks upsample twice).

    normalised (the default): Kaiming init everywhere, the style vector scaled to unit RMS, AdaIN
    whose style scale/bias start at std ``adain_init_std`` (not zero), and a deformation head
    whose initial output is ``deform_init_gain`` times a unit-variance map (vertex offsets of a
    few hundredths of the template radius), so the input moves the mesh from the first step.
    Not normalised (``legacy``): PyTorch's default init, zero-init AdaIN and a 1e-3-std
    deformation head, as first implemented.

    global_scale (normalised only): a linear head on the style predicts a per-axis log-scale
    (x, y, z) of the template, added to the deformation map as ``(exp(s) - 1) * template_radius *
    P(u, v)`` with P the unit-sphere point of each map location (unflat's template: +X pole at
    v = 0, angle around X along u), so an object's overall proportions (a long car, a tall lamp)
    need no large per-vertex offsets. Symmetric about X = 0, so it keeps --decoder.symmetric exact.
    """

    def __init__(
        self,
        feature_dim: int = 512,
        latent_dim: int = 64,
        style_dim: int = 256,
        start: int = 4,
        deform_resolution: int = 32,
        texture_resolution: int = 256,
        max_channels: int = 512,
        min_channels: int = 32,
        symmetric: bool = True,
        normalised: bool = True,
        adain_init_std: float = 0.25,
        deform_init_gain: float = 0.1,
        global_scale: bool = False,
        template_radius: float = 0.5,
    ) -> None:
        super().__init__()
        self.normalised = normalised
        adain_std = adain_init_std if normalised else 0.0
        for name, res in (("deform_resolution", deform_resolution), ("texture_resolution", texture_resolution)):
            k = math.log2(res / start) if res >= start else -1
            if k < 2 or k != int(k):
                raise ValueError(f"{name}={res} must be start ({start}) times a power of two >= 4")
        self.latent_dim, self.start, self.symmetric = latent_dim, start, symmetric
        self.deform_resolution, self.texture_resolution = deform_resolution, texture_resolution
        self.style = nn.Sequential(nn.Linear(feature_dim + latent_dim, style_dim), nn.LeakyReLU(0.2),
                                   nn.Linear(style_dim, style_dim))
        height = start // 2 if symmetric else start
        if height < 1:
            raise ValueError("start must be >= 2 with symmetric prediction")
        self.start_shape = (max_channels, height, start)
        self.fc = nn.Linear(feature_dim, max_channels * height * start)

        def width(level: int) -> int:  # channels at a map of start * 2^level columns
            return max(max_channels // 2 ** max(level - 1, 0), min_channels)

        self.shared = nn.ModuleList([StyleBlock(max_channels, width(1), style_dim, adain_init_std=adain_std),
                                     StyleBlock(width(1), width(2), style_dim, adain_init_std=adain_std)])
        shared_level = 2
        deform_levels = int(math.log2(deform_resolution / start)) - shared_level
        tex_levels = int(math.log2(texture_resolution / start)) - shared_level
        self.mesh_blocks = self._branch(width, shared_level, deform_levels, style_dim, adain_std)
        self.mesh_out = nn.Conv2d(self.mesh_blocks[-1].conv2.out_channels, 3, 3, padding=1)
        self.tex_blocks = self._branch(width, shared_level, tex_levels, style_dim, adain_std)
        tex_ch = self.tex_blocks[-1].conv2.out_channels
        self.tex_after_mirror = StyleBlock(tex_ch, tex_ch, style_dim, upsample=False, adain_init_std=adain_std)
        self.tex_out = nn.Conv2d(tex_ch, 3, 3, padding=1)
        if normalised:
            for module in (self.style, self.shared, self.mesh_blocks, self.tex_blocks, self.tex_after_mirror):
                for m in module.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, AdaIN):
                        nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                        nn.init.zeros_(m.bias)
                for m in module.modules():  # the AdaIN maps keep their own init (re-apply after the loop above)
                    if isinstance(m, AdaIN):
                        nn.init.normal_(m.affine.weight, std=adain_std / math.sqrt(style_dim))
                        nn.init.zeros_(m.affine.bias)
            nn.init.kaiming_normal_(self.fc.weight, nonlinearity="linear")
            nn.init.zeros_(self.fc.bias)
            nn.init.kaiming_normal_(self.mesh_out.weight, nonlinearity="linear")
            self.mesh_out.weight.data.mul_(deform_init_gain)
            nn.init.kaiming_normal_(self.tex_out.weight, nonlinearity="linear")
            nn.init.zeros_(self.tex_out.bias)
        else:
            nn.init.normal_(self.mesh_out.weight, std=1e-3)
        nn.init.zeros_(self.mesh_out.bias)
        self.global_scale = bool(global_scale and normalised)
        self.template_radius = template_radius
        if self.global_scale:
            self.scale_head = nn.Linear(style_dim, 3)
            nn.init.normal_(self.scale_head.weight, std=0.1 / math.sqrt(style_dim))  # log-scales of std ~0.1 at init
            nn.init.zeros_(self.scale_head.bias)
            v = (torch.arange(deform_resolution) + 0.5) / deform_resolution
            theta, phi = torch.meshgrid(math.pi * v, 2 * math.pi * v, indexing="ij")
            position = torch.stack([torch.cos(theta), torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi)])
            self.register_buffer("position_map", position[None], persistent=False)

    @staticmethod
    def _branch(width, level: int, levels: int, style_dim: int, adain_std: float = 0.0) -> nn.ModuleList:
        """``levels`` upsampling blocks from ``level``, or one block at the same size when 0."""
        if levels == 0:
            return nn.ModuleList([StyleBlock(width(level), width(level), style_dim, upsample=False, adain_init_std=adain_std)])
        return nn.ModuleList(
            [StyleBlock(width(level + i), width(level + i + 1), style_dim, adain_init_std=adain_std) for i in range(levels)]
        )

    def forward(self, features: Tensor, latent: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batch = features.shape[0]
        if latent is None:
            latent = features.new_zeros(batch, self.latent_dim)
        style = self.style(torch.cat([features, latent], 1))
        if self.normalised:  # unit RMS, as StyleGAN's mapping input: the AdaIN init then sets the style's effect
            style = style * torch.rsqrt(style.square().mean(1, keepdim=True) + 1e-8)
        x = self.fc(features).view(batch, *self.start_shape)
        for block in self.shared:
            x = block(x, style)
        mesh = x
        for block in self.mesh_blocks:
            mesh = block(mesh, style)
        deformation = self.mesh_out(mesh)
        tex = x
        for block in self.tex_blocks:
            tex = block(tex, style)
        if self.symmetric:
            deformation = mirror_rows(deformation, negate_channel=0)
            tex = mirror_rows(tex)
        if self.global_scale:
            log_scale = 1.5 * torch.tanh(self.scale_head(style) / 1.5)  # within [e^-1.5, e^1.5]
            deformation = deformation + (log_scale.exp() - 1)[..., None, None] * self.template_radius * self.position_map.to(deformation.dtype)
        tex = self.tex_after_mirror(tex, style)
        texture = torch.tanh(self.tex_out(tex))
        return deformation, texture


class ReconstructionNet(nn.Module):
    """images [B,3,R,R] in [-1,1] (+ latent) -> (deformation map, texture map); see UVDecoder."""

    def __init__(self, encoder: ImageEncoder | EfficientNetEncoder, decoder: UVDecoder) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    def forward(self, images: Tensor, latent: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.decoder(self.encoder(images), latent)


# ---------------------------------------------------------------------------------------------
# discriminator
# ---------------------------------------------------------------------------------------------
class _ConditionEmbedding(nn.Module):
    """Conditioning texture + mask [B,4,T,T] -> vector [B,C]: strided convs, then global average pooling."""

    def __init__(self, in_ch: int, channels: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Conv2d(in_ch, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            in_ch = width
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).mean((2, 3))


class _PatchScale(nn.Module):
    """One scale: [texture, mask, positional embedding] -> patch features -> logits + projection."""

    def __init__(self, resolution: int, channels: list[int], pos_channels: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, pos_channels, resolution, resolution) * 0.1)
        layers: list[nn.Module] = []
        in_ch = 4 + pos_channels
        for i, width in enumerate(channels):
            stride = 2 if i < len(channels) - 1 else 1
            layers += [nn.Conv2d(in_ch, width, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.logit = nn.Conv2d(in_ch, 1, 1)
        self.embed = _ConditionEmbedding(4, channels)

    def forward(self, tex: Tensor, mask: Tensor, cond: Tensor) -> Tensor:
        pos = F.interpolate(self.pos, size=tex.shape[-2:], mode="bilinear", align_corners=False) \
            if self.pos.shape[-1] != tex.shape[-1] else self.pos
        h = self.features(torch.cat([tex, mask, pos.expand(tex.shape[0], -1, -1, -1).to(tex.dtype)], 1))
        e = self.embed(cond)
        return self.logit(h) + (h * e[:, :, None, None]).sum(1, keepdim=True)


class UVDiscriminator(nn.Module):
    """Multi-view conditional projection discriminator on UV textures, at two scales.

    forward(texture [B,3,T,T] in [-1,1], mask [B,1,T,T], cond_texture [B,3,T,T], cond_mask [B,1,T,T])
    -> list of patch logits, one [B,1,h,w] per scale (full resolution, then half). The texture
    must already be multiplied by its mask (real: the partial texture of view 2; fake: the
    generated texture masked by view 2's visibility).
    """

    def __init__(self, resolution: int, base_channels: int = 64, max_channels: int = 512,
                 num_layers: int = 4, pos_channels: int = 8, num_scales: int = 2, conditional: bool = True) -> None:
        super().__init__()
        channels = _channels(base_channels, max_channels, num_layers)
        self.scales = nn.ModuleList(
            [_PatchScale(max(resolution // 2**s, 4), channels, pos_channels) for s in range(num_scales)]
        )
        self.conditional = conditional

    def forward(self, tex: Tensor, mask: Tensor, cond_tex: Tensor, cond_mask: Tensor) -> list[Tensor]:
        cond = torch.cat([cond_tex * cond_mask, cond_mask], 1)
        if not self.conditional:
            cond = torch.zeros_like(cond)
        outputs = []
        for scale in self.scales:
            outputs.append(scale(tex, mask, cond))
            tex, mask, cond = (F.avg_pool2d(t, 2) for t in (tex, mask, cond))
        return outputs
