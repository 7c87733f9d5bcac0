"""Config section ``world``: the synthetic physics world (see docs/synthetic_world.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import ConfigError, nonsemantic


@dataclass
class WorldConfig:
    """How many videos, where they were filmed, how they look and sound. Defaults give the 20-video x 16-hit
    benchmark set at 10 sites."""

    seed: int = 0  # the world's identity: same seed (and settings), same bytes; independent of the training seed
    videos: int = 20
    hits_per_video: int = 16  # annotated events per video (hits, scratches, a few None labels)

    # The site catalogue (physdiff.world.sites): places with fixed objects, shared by every world with the same
    # catalogue settings whatever its seed (several videos filmed at one place, as in Greatest Hits).
    catalogue_seed: int = 0  # the catalogue's identity (scenes' objects, sounds, looks, acoustics)
    sites: int = 10  # places (one of each scene type); site i is the same in every catalogue of >= i + 1 sites
    objects_per_site: int = 6  # fixed objects at each site (its scene's anchor kinds first)
    unseen_sites: float = 0.0  # fraction of sites held out of training: their videos go to test only
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
    objects_per_video: int = 3  # distinct objects of its site one video strikes (at most; fewer when the runs are long)
    hits_per_object: float = 4.0  # mean run of strikes on one object before the camera moves on (>= 1)

    # Environment: clean=True turns the room reverberation and the background noise off (tests,
    # the estimator round trip); the contact transient stays (it is part of the impact).
    clean: bool = False

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # ~310 train / ~80 test clips; 5 videos per site, so test videos strike objects training videos struck
        # workers=2: the README main job runs on 2 cores (a process each; the bytes do not depend on it)
        "tiny": {"videos": 40, "hits_per_video": 12, "size": 64, "sites": 8, "objects_per_site": 5, "workers": 2},
        "debug": {"videos": 4, "hits_per_video": 4, "size": 32, "sites": 2, "objects_per_site": 4, "objects_per_video": 2},
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
        if self.catalogue_seed < 0:
            raise ConfigError(f"world.catalogue_seed must be >= 0, got {self.catalogue_seed}")
        if self.sites < 1 or self.objects_per_site < 1:
            raise ConfigError(f"world.sites and world.objects_per_site must be >= 1 (got {self.sites}, {self.objects_per_site})")
        if self.objects_per_video > self.objects_per_site:
            raise ConfigError(f"world.objects_per_video ({self.objects_per_video}) must be <= world.objects_per_site "
                              f"({self.objects_per_site}): a video strikes objects of its own site")
        if not 0.0 <= self.unseen_sites < 1.0:
            raise ConfigError(f"world.unseen_sites must be a fraction in [0, 1), got {self.unseen_sites}")
        if self.unseen_sites > 0 and max(1, round(self.unseen_sites * self.sites)) >= self.sites:
            raise ConfigError(f"world.unseen_sites={self.unseen_sites} holds out all {self.sites} sites: "
                              f"training needs at least one (raise world.sites or lower the fraction)")
        if self.hits_per_object < 1.0:
            raise ConfigError(f"world.hits_per_object must be >= 1 (a mean run length), got {self.hits_per_object}")
        if self.workers < 1:
            raise ConfigError(f"world.workers must be >= 1, got {self.workers}")
