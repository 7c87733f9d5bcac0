"""The denoiser (paper Sec. 3.4): a 2-D U-Net over the normalised log-magnitude spectrogram (B, 1, F, N).

Two layouts (``diffusion.unet_layout``), both after Ho et al. 2020 / lucidrains' denoising-diffusion-pytorch:

- ``"official"`` (:class:`OfficialUNet`, the ``paper`` preset): the official code's ``Unet3D`` as built for
  Greatest Hits (width 64, mults 1/2/4/8): per level, a residual block that changes the channels, a second
  block, linear attention (8 heads x 32, channel LayerNorm pre-norm), one skip, a channel-keeping 4x4
  stride-2 conv down; bottleneck block, block; mirrored up path (zero-pad the up-sampled map to the skip's
  size, concat, block, block, attention, 4x4 transposed conv up); concat the init features, an unconditioned
  residual block, 1x1 conv. 35.25 M parameters and 138.1 GFLOP per forward at 1025 x 44 with the official
  273-d condition (bench/diffusion.py counts them).
- ``"physdiff"`` (:class:`UNet`, ``tiny`` / ``debug``): the layout below.

physdiff layout: init 7x7 conv -> for each level: ``blocks_per_level`` residual blocks (+ linear attention
where configured), a skip after each block, stride-2 4x4 conv down (channel change; 3x3 conv on the last
level) -> bottleneck: block, attention (configurable), block -> mirrored up path: concat skip, residual
block (+ attention), 4x4 transposed conv up -> concat the init features -> residual block -> 1x1 conv.

Conditioning: a sinusoidal embedding of the diffusion step (width -> 4*width, 256 for paper) is concatenated
with the condition vector c (mu and/or nu, see ``conditioning.py``); every residual block maps it through
SiLU + Linear to a per-channel scale and shift applied after its first GroupNorm (FiLM, "scale-and-shift").

Odd sizes (1025 x 44, 257 x 32): the input is reflect-padded at the high-frequency / late-time ends to a
multiple of 2^(levels-1), so every down/up step halves and doubles exactly, and the output is cropped back to
the input's size: no per-level pad/crop seams inside the network.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0, official: bool = False) -> Tensor:
    """t (B,) -> (B, dim): [sin(t w_k), cos(t w_k)] with w_k = max_period^(-k / (dim/2)) (Vaswani et al.);
    ``official=True``: w_k = max_period^(-k / (dim/2 - 1)), the official code's spacing (last w = 1/max_period)."""
    half = dim // 2
    denom = max(half - 1, 1) if official else half
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / denom)  # (dim/2,)
    args = t.float()[:, None] * freqs[None]  # (B, dim/2)
    emb = torch.cat([args.sin(), args.cos()], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim - 2 * half))


def _groups(channels: int, groups: int) -> int:
    """The largest group count <= ``groups`` that divides ``channels``."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """conv3x3 -> GN -> (1 + scale) * h + shift -> SiLU -> conv3x3 -> GN -> SiLU, plus a 1x1 skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8) -> None:
        super().__init__()
        # emb_dim 0: an unconditioned block (the official layout's final block)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * c_out)) if emb_dim else None
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:  # (B, Ci, H, W), (B, E) -> (B, Co, H, W)
        h = self.norm1(self.conv1(x))
        if self.emb is not None:
            scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, Co, 1, 1) each
            h = h * (1 + scale) + shift
        h = F.silu(h)
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels at every position, with a gain and no bias (the official ``LayerNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)  # (B, 1, H, W) each
        return (x - mean) * torch.rsqrt(var + self.eps) * self.gamma


class LinearAttention(nn.Module):
    """Residual, pre-normed linear attention (Shen et al. 2021; lucidrains): softmax over the head dim for q,
    over positions for k; cost linear in H*W, so it is affordable at high resolution."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, official: bool = False) -> None:
        """``official=True``: the official code's block (pre-norm over channels per position, gamma only, and
        no norm on the output); else GroupNorm(1) before and after (lucidrains' 2-D U-Net)."""
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        hidden = heads * dim_head
        self.norm = ChannelLayerNorm(dim) if official else nn.GroupNorm(1, dim)
        self.qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.out = nn.Conv2d(hidden, dim, 1) if official else nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, self.dim_head, h * w)  # (B, 3, h, d, n)
        q, k, v = qkv.unbind(1)  # (B, h, d, n) each
        q = q.softmax(dim=-2) * self.dim_head**-0.5
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)  # (B, h, d, d)
        out = torch.einsum("bhde,bhdn->bhen", context, q)  # (B, h, d, n)
        return x + self.out(out.reshape(b, self.heads * self.dim_head, h, w))


class FullAttention(nn.Module):
    """Residual, pre-normed softmax self-attention over all positions (used at the bottleneck)."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        hidden = heads * dim_head
        self.norm = nn.GroupNorm(1, dim)
        self.qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, self.dim_head, h * w)  # (B, 3, h, d, n)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, h, n, d) each
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, n, d)
        return x + self.out(out.transpose(-1, -2).reshape(b, self.heads * self.dim_head, h, w))


def _attention(kind: str, dim: int, heads: int, dim_head: int) -> nn.Module:
    if kind == "linear":
        return LinearAttention(dim, heads, dim_head)
    if kind == "full":
        return FullAttention(dim, heads, dim_head)
    return nn.Identity()


class UNet(nn.Module):
    """eps_theta(x_t, t, c): (B, 1, F, N), (B,), (B, cond_dim) -> (B, 1, F, N). Any F, N >= 2."""

    def __init__(self, *, in_channels: int = 1, width: int = 64, channel_mults: Sequence[int] = (1, 2, 4, 8),
                 blocks_per_level: int = 2, attn_levels: Sequence[int] = (0, 1, 2, 3), mid_attention: str = "full",
                 cond_dim: int = 0, heads: int = 4, dim_head: int = 32, groups: int = 8,
                 freq_bins: int = 0) -> None:
        super().__init__()
        self.width = width
        # Frequency-aware input (``freq_bins`` > 0): convolutions and FiLM are blind to absolute frequency, so a
        # small U-Net cannot put a mode where the condition says. Two extra input channels fix that: the bin's
        # coordinate in [-1, 1] and a spectral envelope Linear(cond) -> (F,) the condition writes per bin; both
        # are constant over time. The output stays one channel.
        self.freq_bins = freq_bins
        if freq_bins:
            if not cond_dim:
                raise ValueError("freq_bins needs a condition (cond_dim > 0) for its envelope channel")
            self.envelope = nn.Linear(cond_dim, freq_bins)
            nn.init.zeros_(self.envelope.weight)  # starts as a plain coordinate channel; the condition learns in
            nn.init.zeros_(self.envelope.bias)
        out_channels = in_channels
        in_channels = in_channels + (2 if freq_bins else 0)
        self.levels = len(channel_mults)
        self.multiple = 2 ** (self.levels - 1)  # input sizes are padded to this
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        self.cond_dim = cond_dim
        emb_dim = time_dim + cond_dim
        # Level lv works at ``c_in[lv]`` channels and its down conv maps to ``c_out[lv]``; the bottleneck works at
        # width * mults[-1] (official / lucidrains layout: 64, 64, 128, 256 -> 512 for paper).
        c_out = [width * m for m in channel_mults]
        c_in = [width] + c_out[:-1]
        self.init_conv = nn.Conv2d(in_channels, width, 7, padding=3)

        self.down = nn.ModuleList()
        for lv, (ci, co) in enumerate(zip(c_in, c_out)):
            last = lv == self.levels - 1
            self.down.append(nn.ModuleDict({
                "blocks": nn.ModuleList(ResBlock(ci, ci, emb_dim, groups) for _ in range(blocks_per_level)),
                "attn": _attention("linear" if lv in attn_levels else "none", ci, heads, dim_head),
                "down": nn.Conv2d(ci, co, 3, padding=1) if last else nn.Conv2d(ci, co, 4, stride=2, padding=1),
            }))
        mid = c_out[-1]
        self.mid1 = ResBlock(mid, mid, emb_dim, groups)
        self.mid_attn = _attention(mid_attention, mid, heads, dim_head)
        self.mid2 = ResBlock(mid, mid, emb_dim, groups)

        self.up = nn.ModuleList()
        for lv in reversed(range(self.levels)):
            ci, co = c_in[lv], c_out[lv]
            self.up.append(nn.ModuleDict({
                "blocks": nn.ModuleList(ResBlock(co + ci, co, emb_dim, groups) for _ in range(blocks_per_level)),
                "attn": _attention("linear" if lv in attn_levels else "none", co, heads, dim_head),
                "up": nn.ConvTranspose2d(co, ci, 4, stride=2, padding=1) if lv > 0 else nn.Conv2d(co, ci, 3, padding=1),
            }))
        self.final_block = ResBlock(2 * width, width, emb_dim, groups)
        self.final_conv = nn.Conv2d(width, out_channels, 1)

    def pad(self, x: Tensor) -> Tensor:
        """Reflect-pad F and N at their ends up to multiples of 2^(levels-1) (replicate when too short)."""
        f, n = x.shape[-2:]
        pf, pn = (-f) % self.multiple, (-n) % self.multiple
        if pf == 0 and pn == 0:
            return x
        mode = "reflect" if pf < f and pn < n else "replicate"
        return F.pad(x, (0, pn, 0, pf), mode=mode)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        f, n = x.shape[-2:]
        emb = self.time_mlp(sinusoidal_embedding(t, self.width).to(x.dtype))  # (B, 4w)
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                raise ValueError(f"U-Net expects a condition of width {self.cond_dim}, got "
                                 f"{None if cond is None else tuple(cond.shape)}")
            emb = torch.cat([emb, cond.to(emb.dtype)], dim=-1)  # (B, 4w + C)
        if self.freq_bins:
            if f != self.freq_bins:
                raise ValueError(f"U-Net built for {self.freq_bins} frequency bins got {f}")
            b = x.shape[0]
            coord = torch.linspace(-1.0, 1.0, f, device=x.device, dtype=x.dtype).view(1, 1, f, 1).expand(b, 1, f, n)  # (B, 1, F, N)
            env = self.envelope(cond.to(x.dtype)).view(b, 1, f, 1).expand(b, 1, f, n)  # (B, 1, F, N)
            x = torch.cat([x, coord, env], dim=1)  # (B, 3, F, N)
        h = self.init_conv(self.pad(x))  # (B, w, F', N')
        r = h
        skips: list[Tensor] = []
        for level in self.down:
            for i, block in enumerate(level["blocks"]):
                h = block(h, emb)
                if i == len(level["blocks"]) - 1:
                    h = level["attn"](h)
                skips.append(h)
            h = level["down"](h)  # (B, c_next, H/2, W/2) except on the last level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for i, block in enumerate(level["blocks"]):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = level["attn"](h)
            h = level["up"](h)  # (B, c_out, 2H, 2W) except on the top level
        h = self.final_block(torch.cat([h, r], dim=1), emb)  # (B, w, F', N')
        return self.final_conv(h)[..., :f, :n]  # (B, 1, F, N): crop the padding back exactly


class OfficialUNet(nn.Module):
    """The official code's U-Net (``Unet3D`` of sukun1045/video-physics-sound-diffusion, built with dim 64 and
    mults 1/2/4/8 for Greatest Hits), restated: eps_theta(x_t, t, c) for (B, 1, F, N) -> (B, 1, F, N), any F, N.

    Level i works at the resolution 1 / 2^i with ``width * mults[i]`` channels: its first residual block
    changes the channel count, the others keep it; linear attention (official: 8 heads of 32, on every
    level) follows the blocks; the single skip of the level is taken after the attention; a 4x4 stride-2
    conv keeps the channels and halves the size (floor), except on the last level. The bottleneck is two
    residual blocks (``mid_attention`` between them; official "none"). On the way up each level zero-pads
    the up-sampled map to its skip's size (the official fix for odd sizes, e.g. 1024 -> 1025 and 10 -> 11),
    concatenates the skip and mirrors the down level. The time embedding (official spacing, see
    :func:`sinusoidal_embedding`) goes through Linear-GELU-Linear to 4 x width and is concatenated with c;
    every block but the final one is conditioned on it by scale-and-shift. The learned null condition of
    the official class lives in :class:`physdiff.models.conditioning.Conditioner` here.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 64, channel_mults: Sequence[int] = (1, 2, 4, 8),
                 blocks_per_level: int = 2, attn_levels: Sequence[int] = (0, 1, 2, 3), mid_attention: str = "none",
                 cond_dim: int = 0, heads: int = 8, dim_head: int = 32, groups: int = 8) -> None:
        super().__init__()
        if blocks_per_level < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {blocks_per_level}")
        self.width, self.cond_dim = width, cond_dim
        self.levels = len(channel_mults)
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        emb_dim = time_dim + cond_dim
        dims = [width] + [width * m for m in channel_mults]
        io = list(zip(dims[:-1], dims[1:]))  # (dim_in, dim_out) per level
        self.init_conv = nn.Conv2d(in_channels, width, 7, padding=3, bias=False)

        def attn(lv: int, dim: int) -> nn.Module:
            return LinearAttention(dim, heads, dim_head, official=True) if lv in attn_levels else nn.Identity()

        self.down = nn.ModuleList()
        for lv, (di, do) in enumerate(io):
            last = lv == self.levels - 1
            self.down.append(nn.ModuleDict({
                "blocks": nn.ModuleList(ResBlock(di if i == 0 else do, do, emb_dim, groups) for i in range(blocks_per_level)),
                "attn": attn(lv, do),
                "down": nn.Identity() if last else nn.Conv2d(do, do, 4, stride=2, padding=1),
            }))
        mid = dims[-1]
        self.mid1 = ResBlock(mid, mid, emb_dim, groups)
        if mid_attention == "linear":
            self.mid_attn: nn.Module = LinearAttention(mid, heads, dim_head, official=True)
        else:
            self.mid_attn = _attention(mid_attention, mid, heads, dim_head)
        self.mid2 = ResBlock(mid, mid, emb_dim, groups)
        self.up = nn.ModuleList()
        for lv in reversed(range(self.levels)):
            di, do = io[lv]
            self.up.append(nn.ModuleDict({
                "blocks": nn.ModuleList(ResBlock(2 * do if i == 0 else di, di, emb_dim, groups) for i in range(blocks_per_level)),
                "attn": attn(lv, di),
                "up": nn.Identity() if lv == 0 else nn.ConvTranspose2d(di, di, 4, stride=2, padding=1),
            }))
        self.final_block = ResBlock(2 * width, width, 0, groups)  # unconditioned, as the official final block
        self.final_conv = nn.Conv2d(width, in_channels, 1)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.width, official=True).to(x.dtype))  # (B, 4w)
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                raise ValueError(f"U-Net expects a condition of width {self.cond_dim}, got "
                                 f"{None if cond is None else tuple(cond.shape)}")
            emb = torch.cat([emb, cond.to(emb.dtype)], dim=-1)  # (B, 4w + C)
        h = self.init_conv(x)  # (B, w, F, N)
        r = h
        skips: list[Tensor] = []
        for level in self.down:
            for block in level["blocks"]:
                h = block(h, emb)
            h = level["attn"](h)
            skips.append(h)
            h = level["down"](h)  # (B, c, floor(H/2), floor(W/2)) except on the last level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            skip = skips.pop()
            dy, dx = skip.shape[-2] - h.shape[-2], skip.shape[-1] - h.shape[-1]
            h = F.pad(h, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))  # zeros up to the skip's size
            h = torch.cat([h, skip], dim=1)
            for block in level["blocks"]:
                h = block(h, emb)
            h = level["attn"](h)
            h = level["up"](h)  # (B, c, 2H, 2W) except on the top level
        h = self.final_block(torch.cat([h, r], dim=1))  # (B, w, F, N)
        return self.final_conv(h)  # (B, 1, F, N)


UNET_LAYOUTS = ("official", "physdiff")


def unet_from_config(cfg: object, cond_dim: int, num_bins: int = 0) -> nn.Module:
    """The U-Net sized by a ``DiffusionConfig`` (``unet_layout`` picks the class); ``num_bins`` (the
    spectrogram's F) for ``freq_input`` (physdiff layout only)."""
    layout = getattr(cfg, "unet_layout", "physdiff")
    if layout not in UNET_LAYOUTS:
        raise ValueError(f"unknown diffusion.unet_layout {layout!r}; choose one of {UNET_LAYOUTS}")
    if layout == "official":
        if cfg.freq_input:  # type: ignore[attr-defined]
            raise ValueError("diffusion.freq_input needs diffusion.unet_layout=physdiff")
        return OfficialUNet(width=cfg.width, channel_mults=cfg.channel_mults,  # type: ignore[attr-defined]
                            blocks_per_level=cfg.blocks_per_level, attn_levels=cfg.attn_levels,  # type: ignore[attr-defined]
                            mid_attention=cfg.mid_attention, cond_dim=cond_dim, heads=cfg.attn_heads,  # type: ignore[attr-defined]
                            dim_head=cfg.attn_dim_head, groups=cfg.norm_groups)  # type: ignore[attr-defined]
    freq_bins = num_bins if cfg.freq_input else 0  # type: ignore[attr-defined]
    if cfg.freq_input and not num_bins:  # type: ignore[attr-defined]
        raise ValueError("diffusion.freq_input needs the spectrogram's number of bins")
    return UNet(width=cfg.width, channel_mults=cfg.channel_mults, blocks_per_level=cfg.blocks_per_level,  # type: ignore[attr-defined]
                attn_levels=cfg.attn_levels, mid_attention=cfg.mid_attention, cond_dim=cond_dim,  # type: ignore[attr-defined]
                heads=cfg.attn_heads, dim_head=cfg.attn_dim_head, groups=cfg.norm_groups,  # type: ignore[attr-defined]
                freq_bins=freq_bins)
