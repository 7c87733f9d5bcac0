"""Configuration machinery: presets, typed ``key=value`` overrides, JSON round trip, run hash.

The sections and the root ``Config`` live in :mod:`physdiff.config`; section modules of later
stages import :func:`nonsemantic` from here (not from ``physdiff.config``) to avoid import cycles.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

class ConfigError(ValueError):
    """A bad preset name, override key or value; the message is one actionable line."""


def nonsemantic(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A field that does not change what a run computes (paths, workers, logging): left out of the run hash."""
    md = dict(kw.pop("metadata", {}) or {})
    md["semantic"] = False
    if default is dataclasses.MISSING:
        return field(metadata=md, **kw)
    return field(default=default, metadata=md, **kw)



# Presets: "paper" is the defaults; others are the union of each section's PRESETS entry.
# "debug" is tiny, smaller still (a few seconds per stage), for smoke tests.
PRESETS: tuple[str, ...] = ("paper", "tiny", "debug")
_PRESET_PARENT = {"debug": "tiny"}


# ----------------------------------------------------------------------------- machinery


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass tree -> plain JSON-able dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def from_dict(cls: type, data: dict[str, Any], _prefix: str = "") -> Any:
    """Plain dict -> dataclass tree, checking keys and types (unknown keys are an error)."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_msg(_prefix + key, cls, _prefix))
        tp = hints[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{_prefix}{key}' is a section; expected a mapping, got {value!r}")
            kwargs[key] = from_dict(tp, value, _prefix + key + ".")
        else:
            kwargs[key] = _coerce(value, tp, _prefix + key)
    return cls(**kwargs)


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            keys += _all_keys(tp, prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown_key_msg(key: str, root_cls: type, prefix: str = "") -> str:
    candidates = _all_keys(root_cls, prefix)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown config key '{key}'.{hint} (list all keys with --print-config)"


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a JSON value or a command-line string to the field's declared type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key '{key}': cannot read {value!r} as {tp}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    # a shell-friendly `[a,b,c]` (no quotes): the same list as `a,b,c`
                    if not text.endswith("]") or any(c in text[1:-1] for c in '[]{}"'):
                        raise ConfigError(f"config key '{key}': cannot parse {value!r} as a list") from None
                    value = [v.strip() for v in text[1:-1].split(",") if v.strip() != ""]
            else:
                value = [v for v in text.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) if inner is not Any and inner is not Ellipsis else v for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"config key '{key}': cannot parse {value!r} as a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    f = None
                if f is not None and f.is_integer():
                    return int(f)
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    return value


def _set_path(cfg: Any, key: str, raw: Any, root_cls: type) -> None:
    parts = key.split(".")
    obj = cfg
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            raise ConfigError(_unknown_key_msg(key, root_cls))
        hints = _field_types(type(obj))
        if i == len(parts) - 1:
            tp = hints[part]
            if _is_dataclass_type(tp):
                raise ConfigError(f"config key '{key}' is a section; set one of its fields, e.g. '{key}.<field>=...'")
            setattr(obj, part, _coerce(raw, tp, key))
        else:
            obj = getattr(obj, part)


def parse_override_tokens(tokens: typing.Iterable[str]) -> list[tuple[str, str]]:
    """``section.key=value`` tokens (a leading ``--`` allowed) as (dotted key, value text) pairs."""
    items = []
    for tok in tokens:
        tok = tok.strip()
        if tok.startswith("--"):
            tok = tok[2:]
        if "=" not in tok:
            raise ConfigError(f"override '{tok}' is not of the form section.key=value")
        k, v = tok.split("=", 1)
        items.append((k.strip(), v))
    return items


def apply_overrides(cfg: Any, overrides: typing.Iterable[str] | dict[str, Any]) -> Any:
    """Apply ``key=value`` tokens (or a {dotted key: value} mapping) in place; returns cfg."""
    root_cls = type(cfg)
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = parse_override_tokens(overrides)
    for k, v in items:
        _set_path(cfg, k, v, root_cls)
    _validate(cfg)
    return cfg


def _section_presets(obj: Any, preset: str, prefix: str = "") -> dict[str, Any]:
    """Collect each section's PRESETS[preset] as dotted keys, depth-first."""
    out: dict[str, Any] = {}
    table = getattr(type(obj), "PRESETS", {}) or {}
    for k, v in table.get(preset, {}).items():
        out[prefix + k] = v
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.update(_section_presets(v, preset, prefix + f.name + "."))
    return out


def preset_config(name: str, cls: type) -> Any:
    """The config of a named preset: defaults (= paper), then the parent preset's, then its own deltas."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}.{hint}")
    cfg = cls()
    chain = []
    p: str | None = name
    while p is not None and p != "paper":
        chain.append(p)
        p = _PRESET_PARENT.get(p)
    for p in reversed(chain):
        apply_overrides(cfg, _section_presets(cfg, p))
    cfg.preset = name
    return cfg


def resolve_config(preset: str, overrides: typing.Iterable[str] | dict[str, Any], cls: type) -> Any:
    """Preset + overrides -> a validated Config."""
    cfg = preset_config(preset, cls)
    apply_overrides(cfg, overrides)
    return cfg


def _validate(cfg: Any) -> None:
    """Sections may define ``validate(self)`` raising ConfigError; call them all."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            _validate(v)
    check = getattr(cfg, "validate", None)
    if callable(check):
        check()


def semantic_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("semantic", True) is False:
            continue
        v = getattr(obj, f.name)
        out[f.name] = semantic_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def config_hash(cfg: Any, length: int = 10, sections: typing.Sequence[str] | None = None) -> str:
    """Run identity: sha256 of the semantic part of the config (optionally only some sections)."""
    d = semantic_dict(cfg)
    if sections is not None:
        d = {k: d[k] for k in sections if k in d}
    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
