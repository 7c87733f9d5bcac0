"""Config sections of the paper's comparison systems (Tables 1 and 3, Fig. 5b).

One dataclass per system, named after the stage that trains it (so ``Recipe._stage_or_train`` finds
``<stage>.epochs`` / ``<stage>.lr`` / ``<stage>.eval_every``):

  ``convnet``       ConvNet-based regressor (Table 1): per-frame nu, upsampled in time -> U-Net -> spectrogram, L1
  ``tts``           Transformer-based (Table 1): encoder over per-frame nu, decoder -> spectrogram frames, L1
  ``mfcc``          Video + MFCC (Table 1): the MFCC latent of the ``video_mfcc`` diffusion variant
  ``owens``         NN via predicted sound features (Table 3; Owens et al. 2016): CNN + LSTM -> cochleagram, retrieval
  ``mu_regressor``  Fig. 5b: an MLP nu -> mu whose prediction replaces the retrieved mu

Defaults are ``paper`` (the paper's sizes where it gives them, else the sizes of the matching part of
the paper's model, so a comparison isolates the method); ``PRESETS`` hold the ``tiny`` / ``debug`` deltas,
sized for a 2-core CPU like :mod:`physdiff.models.config` (``debug`` applies on top of ``tiny``).
``epochs`` / ``lr`` 0 mean ``train.epochs`` / ``train.lr``.

Until the root ``Config`` registers them, a section resolves on its own with
``physdiff.configlib.preset_config("tiny", ConvNetConfig)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configchecks import stage_overrides
from physdiff.configlib import ConfigError, nonsemantic

TTS_DECODERS = ("parallel", "autoregressive")
OWENS_INPUTS = ("spacetime", "rgb", "features")
OWENS_LOSSES = ("robust", "l2")
REGRESSOR_LOSSES = ("mse", "l1")
OWENS_BACKBONES = ("resnet50", "resnet18", "resnet_small")


def _check_positive(section: str, obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ConfigError(f"{section}.{name} must be >= 1, got {getattr(obj, name)}")


def _check_rate(section: str, obj: Any, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) < 1.0:
            raise ConfigError(f"{section}.{name} must be in [0, 1), got {getattr(obj, name)}")


@dataclass
class ConvNetConfig:
    """ConvNet-based baseline (Table 1): a U-Net regresses the spectrogram from the video features (no diffusion).

    The input image is a linear map of each (time-upsampled) frame feature to the F bins; the time-averaged
    feature also modulates every block (FiLM through the U-Net's condition path). U-Net sizes default to the
    diffusion model's (``paper``: width 64, mults 1/2/4/8), so Table 1 compares the training objective.
    """

    epochs: int = 0
    lr: float = 0.0
    upsample: str = "linear"  # time interpolation of the 22 frame features to the N spectrogram frames: linear | nearest
    visual_dim: int = 256  # LayerNorm + Linear of the features (per frame and pooled)
    width: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    blocks_per_level: int = 2
    attn_levels: tuple[int, ...] = (0, 1, 2, 3)
    mid_attention: str = "full"
    attn_heads: int = 4
    attn_dim_head: int = 32
    norm_groups: int = 8
    freq_input: bool = False  # + bin-coordinate and condition-written envelope channels (physdiff/models/unet.py)
    loss: str = "l1"  # the "L1"; "l2" for comparison
    eval_every: int = nonsemantic(0)
    channels_last: bool = nonsemantic(True)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # channels_last off: at these widths a CPU step took 0.72-0.77x the NHWC time (two runs, 2 cores)
        "tiny": {"lr": 1e-3, "visual_dim": 64, "width": 16, "channel_mults": (1, 2, 4), "blocks_per_level": 1,
                 "attn_levels": (2,), "mid_attention": "linear", "attn_dim_head": 16, "freq_input": True,
                 "channels_last": False},
        "debug": {"width": 8, "channel_mults": (1, 2), "attn_levels": (1,), "visual_dim": 16},
    }

    def validate(self) -> None:
        stage_overrides("convnet", self)
        if self.upsample not in ("linear", "nearest"):
            raise ConfigError(f"convnet.upsample must be linear or nearest, got '{self.upsample}'")
        if self.mid_attention not in ("full", "linear", "none"):
            raise ConfigError(f"convnet.mid_attention must be full, linear or none, got '{self.mid_attention}'")
        if not self.channel_mults:
            raise ConfigError("convnet.channel_mults needs at least one level")
        bad = [lv for lv in self.attn_levels if not 0 <= lv < len(self.channel_mults)]
        if bad:
            raise ConfigError(f"convnet.attn_levels {bad} outside 0..{len(self.channel_mults) - 1}")
        _check_positive("convnet", self, "width", "visual_dim", "blocks_per_level", "attn_heads", "attn_dim_head")
        if self.width % self.norm_groups:
            raise ConfigError(f"convnet.width {self.width} must be a multiple of norm_groups {self.norm_groups}")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"convnet.loss must be l1 or l2, got '{self.loss}'")


@dataclass
class TTSConfig:
    """Transformer-based baseline (Table 1): a TTS-style encoder-decoder from frame features to spectrogram frames.

    ``decoder="parallel"`` (default): N learned frame queries attend to the encoded video in one pass
    (FastSpeech-style, non-autoregressive); ``"autoregressive"``: Transformer-TTS-style teacher-forced
    decoding of frame n from frames < n through a pre-net, generated frame by frame at test time.
    Widths follow the physics prior's transformer (256-d, 4 heads, 4 layers).
    """

    epochs: int = 0
    lr: float = 0.0
    decoder: str = "parallel"
    d_model: int = 256
    heads: int = 4
    encoder_layers: int = 4
    decoder_layers: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    prenet_dim: int = 256  # autoregressive only: the Transformer-TTS pre-net over the previous frame
    prenet_dropout: float = 0.5  # autoregressive only (Tacotron / Transformer-TTS keep it high against copying)
    loss: str = "l1"
    eval_every: int = nonsemantic(0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"lr": 1e-3, "d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "prenet_dim": 64},
        "debug": {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "prenet_dim": 32},
    }

    def validate(self) -> None:
        stage_overrides("tts", self)
        if self.decoder not in TTS_DECODERS:
            raise ConfigError(f"tts.decoder '{self.decoder}' unknown; choose one of {', '.join(TTS_DECODERS)}")
        _check_positive("tts", self, "d_model", "heads", "encoder_layers", "decoder_layers", "ff_mult", "prenet_dim")
        if self.d_model % self.heads:
            raise ConfigError(f"tts.d_model ({self.d_model}) must be divisible by tts.heads ({self.heads})")
        _check_rate("tts", self, "dropout", "prenet_dropout")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"tts.loss must be l1 or l2, got '{self.loss}'")


@dataclass
class MFCCConfig:
    """Video + MFCC (Table 1): the MFCC latent that conditions the ``video_mfcc`` diffusion variant.

    torchaudio's MFCC (mel power -> dB with an 80 dB range -> orthonormal DCT-II) on the STFT grid of the
    ``audio`` section (n_fft, hop: 44 frames in ``paper``), then an encoder like the physics prior's
    (linear frame embedding, learned positions, pre-norm transformer, mean pool) -> tanh latent.
    """

    n_mfcc: int = 40
    n_mels: int = 128
    f_min: float = 0.0
    scale: float = 0.01  # the dB-valued cepstra are O(100): scaled to O(1) before the embedding
    dim: int = 256
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    latent_dim: int = 256

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"n_mels": 64, "dim": 64, "layers": 2, "latent_dim": 64},
        "debug": {"dim": 32, "layers": 1, "latent_dim": 32},
    }

    def validate(self) -> None:
        _check_positive("mfcc", self, "n_mfcc", "n_mels", "dim", "layers", "heads", "latent_dim")
        if self.n_mfcc > self.n_mels:
            raise ConfigError(f"mfcc.n_mfcc ({self.n_mfcc}) cannot exceed mfcc.n_mels ({self.n_mels})")
        if self.dim % self.heads:
            raise ConfigError(f"mfcc.dim ({self.dim}) must be divisible by mfcc.heads ({self.heads})")
        if self.scale <= 0 or self.f_min < 0:
            raise ConfigError(f"mfcc.scale must be > 0 and mfcc.f_min >= 0, got {self.scale}, {self.f_min}")
        _check_rate("mfcc", self, "dropout")


@dataclass
class OwensConfig:
    """NN via predicted sound features (Table 3; Owens et al., CVPR 2016): CNN over frames + LSTM -> cochleagram.

    Sound features: 40 ERB band-passes + low- and high-pass (42 channels), Hilbert envelopes, mean-downsampled
    to ``samples_per_frame`` x ``video_fps`` (3 x 29.97 = 89.91 Hz, Owens' "90 Hz"), compressed by x ** 0.3
    (:mod:`physdiff.physics.cochleagram`). Image input per frame: Owens' "spacetime" image (grayscale of the
    previous, current and next frame as three channels), plain ``rgb``, or the video stage's per-frame
    features (``features``: no CNN here, the cheap variant). ``color_context`` adds the first frame's colour
    features to every step, as Owens et al. do (here through the same CNN). The backbone defaults to the
    paper model's ResNet-50 (Owens used AlexNet) so Table 3 compares the method, not the backbone.
    """

    epochs: int = 0
    lr: float = 0.0
    input: str = "spacetime"
    color_context: bool = True
    backbone: str = "resnet50"
    small_widths: tuple[int, ...] = (16, 32, 64, 128)
    small_blocks: tuple[int, ...] = (1, 1, 1, 1)
    pretrained: str = ""  # local torchvision state-dict path; "" = random init
    lstm_hidden: int = 256
    lstm_layers: int = 1
    dropout: float = 0.0
    # --- the cochleagram (physdiff.physics.cochleagram)
    num_bands: int = 40
    fmin: float = 20.0
    fmax: float = 0.0  # 0 = Nyquist
    compression: float = 0.3
    samples_per_frame: int = 3
    video_fps: float = 30000 / 1001  # Greatest Hits; the synthetic world writes the same
    # --- the loss: Owens' robust log(eps + |s - s_hat|^2) per time step, or plain squared error
    loss: str = "robust"
    robust_eps: float = 1.0 / 25.0**2
    eval_every: int = nonsemantic(0)
    channels_last: bool = nonsemantic(True)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"backbone": "resnet_small", "lstm_hidden": 64},
        "debug": {"small_widths": (8, 16, 32, 64), "lstm_hidden": 32},
    }

    def validate(self) -> None:
        stage_overrides("owens", self)
        if self.input not in OWENS_INPUTS:
            raise ConfigError(f"owens.input '{self.input}' unknown; choose one of {', '.join(OWENS_INPUTS)}")
        if self.backbone not in OWENS_BACKBONES:
            raise ConfigError(f"owens.backbone '{self.backbone}' unknown; choose one of {', '.join(OWENS_BACKBONES)}")
        if len(self.small_widths) != 4 or len(self.small_blocks) != 4:
            raise ConfigError("owens.small_widths and owens.small_blocks need 4 entries (one per ResNet stage)")
        _check_positive("owens", self, "lstm_hidden", "lstm_layers", "num_bands", "samples_per_frame")
        _check_rate("owens", self, "dropout")
        if not 0.0 < self.compression <= 1.0:
            raise ConfigError(f"owens.compression must be in (0, 1], got {self.compression}")
        if self.fmin <= 0 or (self.fmax and self.fmax <= self.fmin):
            raise ConfigError(f"owens.fmin must be > 0 and owens.fmax 0 (Nyquist) or > fmin, got {self.fmin}, {self.fmax}")
        if self.video_fps <= 0:
            raise ConfigError(f"owens.video_fps must be > 0, got {self.video_fps}")
        if self.loss not in OWENS_LOSSES:
            raise ConfigError(f"owens.loss must be one of {', '.join(OWENS_LOSSES)}, got '{self.loss}'")
        if self.robust_eps <= 0:
            raise ConfigError(f"owens.robust_eps must be > 0, got {self.robust_eps}")

    @property
    def rate(self) -> float:
        """The cochleagram's sample rate in Hz (89.91 by default)."""
        return self.samples_per_frame * self.video_fps


@dataclass
class MuRegressorConfig:
    """Fig. 5b's fourth bar: an MLP from the visual latent nu to the physics latent mu (of a trained diffusion run).

    LayerNorm(nu) -> ``layers`` x (Linear, GELU, dropout) -> Linear -> tanh (mu is the physics encoder's
    tanh output, so the prediction lives in the same box). Its prediction replaces the retrieved mu.
    """

    epochs: int = 0
    lr: float = 0.0
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.1
    loss: str = "mse"
    diffusion_run: str = ""  # the diffusion run whose mu export is the target; "" = this config's
    eval_every: int = nonsemantic(0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"hidden": 128, "layers": 2},
        "debug": {"hidden": 32},
    }

    def validate(self) -> None:
        stage_overrides("mu_regressor", self)
        _check_positive("mu_regressor", self, "hidden", "layers")
        _check_rate("mu_regressor", self, "dropout")
        if self.loss not in REGRESSOR_LOSSES:
            raise ConfigError(f"mu_regressor.loss must be one of {', '.join(REGRESSOR_LOSSES)}, got '{self.loss}'")


# Section name -> class, for the root Config to register (``convnet: ConvNetConfig = field(...)``, ...).
BASELINE_SECTIONS: dict[str, type] = {
    "convnet": ConvNetConfig,
    "tts": TTSConfig,
    "mfcc": MFCCConfig,
    "owens": OwensConfig,
    "mu_regressor": MuRegressorConfig,
}
