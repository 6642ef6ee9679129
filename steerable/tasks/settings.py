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


def add_run_arguments(parser: argparse.ArgumentParser, presets: Mapping[str, Mapping[str, Any]]) -> None:
    """The options every task shares: preset, config file, output, resume, hardware, progress."""
    a = parser.add_argument
    a("--preset", choices=sorted(presets), default="full", help="base settings (default: full)")
    a("--config", help="YAML file of settings (keys: option names with '_'), applied over the preset")
    a("--out-dir", help="checkpoints, CSV logs and results.json (default: runs/<task>_<preset>)")
    a("--resume", metavar="PATH", help="checkpoint to resume training from")
    a("--accelerator", help='Lightning accelerator (default "auto")')
    a("--devices", help='Lightning devices (default "auto")')
    a(
        "--num-threads", type=int,
        help="torch intra-op threads (default 1: the per-edge ops are small, threads cost more than they "
        "gain on CPU; 0 keeps torch's setting)",
    )
    a("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")
    a("--ema", type=float, metavar="DECAY",
      help="validate, checkpoint and test an exponential moving average of the weights (e.g. 0.999)")
