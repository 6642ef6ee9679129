"""Settings of a task run, resolved in one order for every task: preset, ``--config`` YAML, flags."""
from __future__ import annotations

import argparse
from typing import Any, Mapping


def resolve_settings(
    args: argparse.Namespace, defaults: Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``defaults``, then the preset ``args.preset``, then the YAML file ``args.config`` (keys are the
    long option names with ``_``; it may name a ``preset``), then every flag given explicitly.

    Raises ``ValueError`` naming the file for an unknown preset, unknown keys or a non-mapping file.
    ``backend`` values ``"auto"`` or empty become ``None`` (the registry's choice).
    """
    cfg = dict(defaults)
    cfg.update(presets[args.preset])
    cfg["preset"] = args.preset
    if getattr(args, "config", None):
        import yaml

        with open(args.config) as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of settings")
        if "preset" in loaded:
            preset = loaded.pop("preset")
            if preset not in presets:
                raise ValueError(f"{args.config}: unknown preset {preset!r}; expected one of {sorted(presets)}")
            cfg.update(presets[preset])
            cfg["preset"] = preset
        unknown = set(loaded) - set(cfg)
        if unknown:
            raise ValueError(f"{args.config}: unknown settings {sorted(unknown)}")
        cfg.update(loaded)
    for key, value in vars(args).items():
        if key not in ("preset", "config") and value is not None:
            cfg[key] = value
    if cfg.get("backend") in ("auto", ""):
        cfg["backend"] = None
    return cfg
