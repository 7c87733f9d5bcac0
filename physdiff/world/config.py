"""Config section ``world``: the synthetic physics world (see docs/synthetic_world.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import ConfigError, nonsemantic


@dataclass
class WorldConfig:
    """How many videos, how they look and sound. Defaults give the 20-video x 16-hit benchmark set."""

    seed: int = 0  # the world's identity: same seed (and settings), same bytes; independent of the training seed
    videos: int = 20
    hits_per_video: int = 16  # annotated events per video (hits, scratches, a few None labels)
    size: int = 224  # square frame size in pixels (even: H.264 4:2:0)
    test_fraction: float = 0.2  # share of videos in test.txt (split by video, as the real dataset)
    workers: int = nonsemantic(1)  # processes; the bytes written do not depend on it

    # Media, in the real dataset's formats.
    sample_rate: int = 96000  # the recording (<id>_denoised.wav), Greatest Hits' rate
    fps_num: int = 30000
    fps_den: int = 1001  # 29.97 fps
    wav_subtype: str = "FLOAT"  # soundfile subtype: FLOAT (32-bit, exact ground truth) or PCM_16
    audio_track_rate: int = 48000  # AAC track of the mp4 (the wav is the reference recording)
    crf: int = 20  # libx264 quality
    x264_preset: str = nonsemantic("veryfast")

    # Timeline: gaps between event onsets (s). Real annotations are >= 0.25 s apart, with a few
    # closer double hits; the average spacing keeps videos short (the encoder is the bottleneck).
    min_gap: float = 0.25
    mean_gap: float = 0.7
    close_pair_prob: float = 0.06  # chance that a gap is a quick double hit (0.10-0.24 s)
    scratch_prob: float = 0.1  # action "scratch": the stick drags along the surface
    moving_prob: float = 0.08  # reaction other than "static": the object moves when struck
    unlabelled_prob: float = 0.03  # material annotated "None" (the true material is in physics.json)
    objects_per_video: int = 4  # surfaces the camera visits in one recording

    # Environment: clean=True turns the room reverberation and the background noise off (tests,
    # the estimator round trip); the contact transient stays (it is part of the impact).
    clean: bool = False

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"videos": 40, "hits_per_video": 12, "size": 64},  # ~330 train / ~80 test clips
        "debug": {"videos": 4, "hits_per_video": 4, "size": 32},
    }

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    def validate(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"world.seed must be >= 0, got {self.seed}")
        if self.videos < 1 or self.hits_per_video < 1:
            raise ConfigError(f"world.videos and world.hits_per_video must be >= 1 (got {self.videos}, {self.hits_per_video})")
        if self.size < 16 or self.size % 2:
            raise ConfigError(f"world.size must be an even number >= 16 (H.264 4:2:0 frames), got {self.size}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"world.test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.sample_rate < 44100:
            raise ConfigError(f"world.sample_rate must be >= 44100 (modes reach 20 kHz), got {self.sample_rate}")
        if self.wav_subtype not in ("FLOAT", "PCM_16", "PCM_24"):
            raise ConfigError(f"world.wav_subtype must be FLOAT, PCM_24 or PCM_16, got {self.wav_subtype!r}")
        if self.min_gap <= 0 or self.mean_gap < self.min_gap:
            raise ConfigError(f"world.mean_gap ({self.mean_gap}) must be >= world.min_gap ({self.min_gap}) > 0")
        for name in ("close_pair_prob", "scratch_prob", "moving_prob", "unlabelled_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"world.{name} must be a probability in [0, 1], got {p}")
        if self.objects_per_video < 1:
            raise ConfigError(f"world.objects_per_video must be >= 1, got {self.objects_per_video}")
        if self.workers < 1:
            raise ConfigError(f"world.workers must be >= 1, got {self.workers}")
