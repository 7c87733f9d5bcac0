import json

import pytest

from physdiff.config import Config, ConfigError, PRESETS, config_hash, from_dict, resolve_config


def test_presets_resolve_and_differ():
    paper = resolve_config("paper")
    tiny = resolve_config("tiny")
    assert paper.audio.n_fft == 2048 and paper.audio.hop_length == 256 and paper.audio.sample_rate == 44100
    assert paper.audio.num_bins == 1025 and paper.audio.num_frames == 44  # the paper's 1025 x 44
    assert paper.physics.residual_bands == 100
    assert tiny.audio.n_fft < paper.audio.n_fft
    assert set(PRESETS) >= {"paper", "tiny", "debug"}
    # debug inherits tiny's deltas, then applies its own
    debug = resolve_config("debug")
    assert debug.audio.n_fft == tiny.audio.n_fft and debug.world.size < tiny.world.size


def test_overrides_are_typed():
    cfg = resolve_config("tiny", ["audio.n_fft=1024", "train.lr=1e-3", "diffusion.channel_mults=1,2,4,8", "train.ema_decay=0"])
    assert cfg.audio.n_fft == 1024 and isinstance(cfg.audio.n_fft, int)
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.diffusion.channel_mults == (1, 2, 4, 8)


@pytest.mark.parametrize(
    "bad, words",
    [(["audio.nfft=3"], "audio.n_fft"), (["audio.n_fft=abc"], "integer"), (["audio"], "key=value"), (["audio=3"], "section")],
)
def test_bad_overrides_name_the_key(bad, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        resolve_config("paper", bad)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'tny'.*tiny"):
        resolve_config("tny")


def test_json_round_trip(tmp_path):
    cfg = resolve_config("tiny", ["seed=3"])
    path = cfg.write_json(tmp_path / "run" / "config.json")
    back = Config.from_json(path)
    assert back == cfg
    assert json.loads(path.read_text())["seed"] == 3


def test_hash_ignores_nonsemantic_keys():
    a = resolve_config("tiny")
    b = resolve_config("tiny", ["paths.data_root=/elsewhere", "loader.num_workers=7", "tracking.experiment=x"])
    c = resolve_config("tiny", ["train.lr=1e-3"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert from_dict(Config, a.to_dict()).hash() == a.hash()
