"""Declarative settings of a task run: each setting is declared once, and everything else derives from it.

A task declares its settings as :class:`Setting` entries grouped in sections (:func:`section`) and
its presets as partial overrides of the declared defaults; :class:`TaskSettings` derives from that
one declaration

* the command-line flags: setting ``n_train`` is ``--n-train VALUE``; a boolean setting is the
  switch pair ``--name`` / ``--no-name``; the help of every flag ends with its default under each
  preset;
* the YAML keys of ``--config`` files: the setting names, plus ``preset``;
* the resolved settings (a flat ``dict`` name -> value, in one order for every task): the declared
  defaults, then the preset (``--preset``, or the one the YAML file names, which replaces it), then
  the YAML file's values, then every flag given on the command line.

Sections also say where a setting goes (:meth:`TaskSettings.select`, e.g. the ``model`` section
is the network's keyword arguments), so no list of keys is written twice.  Nothing here imports
lightning: ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "Setting",
    "Section",
    "section",
    "run_section",
    "TaskSettings",
    "positive",
    "non_negative",
    "fraction",
    "between",
]

#: value names in ``--help`` by type, where a setting names none
_METAVARS = {int: "N", float: "X", str: "TEXT"}
#: names that are options of the command line but not settings
_RESERVED = ("preset", "config", "help")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its default, help text and how its value is parsed.

    Args:
        default: the value when neither preset, YAML file nor flag sets it.  ``bool`` defaults make
            a switch (``--name`` / ``--no-name``).
        help: one phrase saying what the setting does (the flag's help; the default is appended).
        type: parser of a flag's text (``int``, ``float``, ``str``); taken from ``default`` when
            omitted (required when the default is ``None``).
        choices: the allowed values, or ``None``.
        metavar: the value's name in ``--help`` (argparse's ``metavar``).
        nargs: a fixed number of values (the setting is then a list), or ``None`` for one value.
        check: ``value -> None`` or the reason a (non-``None``) value is not accepted, e.g.
            :func:`positive`; applied to every value (declared default, preset, YAML file, flag)
            before anything is built.
    """

    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | tuple[str, ...] | None = None
    nargs: int | None = None
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.help:
            raise ValueError("Setting: help text is required")
        if self.type is None and self.default is None:
            raise ValueError(f"Setting {self.help!r}: a type is required when the default is None")

    @property
    def is_switch(self) -> bool:
        """Whether the setting is a boolean switch (``--name`` / ``--no-name``)."""
        return isinstance(self.default, bool) and self.nargs is None

    @property
    def value_type(self) -> Callable[[str], Any]:
        """The parser of one value (``bool`` for switches)."""
        return self.type or type(self.default)


def positive(value: Any) -> str | None:
    """Check of :class:`Setting`: the value must be ``> 0``."""
    return None if value > 0 else "must be positive"


def non_negative(value: Any) -> str | None:
    """Check of :class:`Setting`: the value must be ``>= 0``."""
    return None if value >= 0 else "must be >= 0"


def fraction(value: Any) -> str | None:
    """Check of :class:`Setting`: the value must lie in ``[0, 1)``."""
    return None if 0 <= value < 1 else "must be in [0, 1)"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    """Check of :class:`Setting`: the value must lie in the open interval ``(low, high)``."""

    def check(value: Any) -> str | None:
        return None if low < value < high else f"must be in ({low:g}, {high:g})"

    return check


class Section(NamedTuple):
    """Settings that belong together: ``title`` (a heading of ``--help``), ``settings`` name -> :class:`Setting`."""

    title: str
    settings: Mapping[str, Setting]


def section(title: str, **settings: Setting) -> Section:
    """``section("model", layers=Setting(4, "point convolutions"), ...)``: names in the order given."""
    return Section(title, dict(settings))


def equivariant_model_settings(
    *,
    group: str,
    group_help: str,
    hidden_scalars: int,
    hidden_vectors: int,
    kernel_hidden: int,
    kernel_layers: int = 1,
    radial_features: int = 8,
) -> dict[str, Setting]:
    """The model settings every task's equivariant network has (group, backend, hidden field counts,
    kernel MLP sizes), with the task's defaults; a task adds its own to the same section:
    ``section("model", **equivariant_model_settings(group="O(3)", ...), layers=Setting(...))``."""
    return dict(
        group=Setting(group, group_help),
        backend=Setting("escnn", 'backend: "escnn" or "e3nn"; "auto" for the registry\'s choice'),
        hidden_scalars=Setting(hidden_scalars, "trivial fields per hidden layer", check=non_negative),
        hidden_vectors=Setting(hidden_vectors, "standard (vector) fields per hidden layer", check=non_negative),
        kernel_hidden=Setting(kernel_hidden, "hidden channels of each kernel MLP", check=positive),
        kernel_layers=Setting(kernel_layers, "hidden layers of each kernel MLP", check=non_negative),
        radial_features=Setting(radial_features, "radial basis size of the kernel MLPs", check=positive),
    )


#: The optional learnable envelope of the kernels, as the point-cloud tasks declare it.
ENVELOPE_WIDTH = Setting(
    None, "initial width of a learnable Gaussian envelope of the kernels; none: no envelope", float, check=positive
)


def run_section(out_dir: str) -> Section:
    """The settings every task shares: output folder, resume, hardware, console output, weight averaging."""
    return section(
        "run",
        out_dir=Setting(
            out_dir,
            "this run's folder: checkpoints, CSV logs, learning curves, results.json "
            "(a fresh run refuses a folder holding another run's outputs)",
            metavar="DIR",
        ),
        overwrite=Setting(False, "first delete the outputs of an earlier run in the run folder"),
        resume=Setting(
            None,
            "checkpoint to resume training from (one of the run folder's, or any with an empty run folder)",
            str,
            metavar="PATH",
        ),
        accelerator=Setting("auto", "Lightning accelerator (cpu, gpu, ...)"),
        devices=Setting("auto", "Lightning devices (a count, or a list such as 0,1)"),
        num_threads=Setting(
            1,
            "torch intra-op threads (the per-edge ops are small: on CPU threads cost more than they gain; "
            "0 keeps torch's setting)",
            check=non_negative,
        ),
        progress=Setting(True, "Lightning's progress bar"),
        verbose=Setting(False, "also the model summary, Lightning's info lines and the progress of data generation"),
        ema=Setting(
            None,
            "validate, checkpoint and test an exponential moving average of the weights with this decay "
            "(e.g. 0.999); none: the raw weights",
            float,
            metavar="DECAY",
            check=between(0.0, 1.0),
        ),
    )


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value)
    return str(value)


class TaskSettings:
    """The settings of one task, declared once.

    Args:
        task: the task's name (``python -m steerable.tasks TASK``).
        description: first line of ``--help``.
        sections: the settings, in the order ``--help`` lists them; each name once over all sections.
        presets: preset name -> partial overrides of the declared defaults.
        default_preset: the preset used when neither ``--preset`` nor the YAML file names one
            (``demo``: a newcomer's ``python -m steerable.tasks TASK`` is the few-minutes run; the
            long benchmark runs need ``--preset full``).

    Raises ``ValueError`` for a name declared twice, a reserved name (``preset``, ``config``,
    ``help``), a preset setting an undeclared name or a value the setting does not accept.
    """

    def __init__(
        self,
        task: str,
        description: str,
        sections: Sequence[Section],
        presets: Mapping[str, Mapping[str, Any]],
        default_preset: str = "demo",
    ) -> None:
        self.task, self.description, self.sections = task, description, tuple(sections)
        self.settings: dict[str, Setting] = {}
        for sec in self.sections:
            for name, setting in sec.settings.items():
                if name in self.settings:
                    raise ValueError(f"{task}: setting {name!r} is declared twice")
                if name in _RESERVED:
                    raise ValueError(f"{task}: {name!r} is reserved for the command line, not a setting")
                self.settings[name] = setting
        if default_preset not in presets:
            raise ValueError(f"{task}: default preset {default_preset!r} is not one of {sorted(presets)}")
        self.presets = {name: dict(values) for name, values in presets.items()}
        self.default_preset = default_preset
        for name, values in self.presets.items():
            for key, value in values.items():
                self._check(key, value, f"{task} preset {name!r}")
        for name, setting in self.settings.items():
            if setting.default is not None:
                self._check(name, setting.default, f"{task} default")

    # -- the values ------------------------------------------------------------------------------
    @property
    def defaults(self) -> dict[str, Any]:
        """name -> declared default, in declaration order."""
        return {name: s.default for name, s in self.settings.items()}

    def preset(self, name: str) -> dict[str, Any]:
        """The resolved settings of preset ``name`` (defaults, then the preset), with ``"preset": name``."""
        if name not in self.presets:
            raise ValueError(f"{self.task}: unknown preset {name!r}; expected one of {sorted(self.presets)}")
        cfg = self.defaults
        cfg.update(self.presets[name])
        cfg["preset"] = name
        return cfg

    def names(self, title: str) -> tuple[str, ...]:
        """The names of section ``title``."""
        for sec in self.sections:
            if sec.title == title:
                return tuple(sec.settings)
        raise KeyError(f"{self.task}: no section {title!r}; sections: {[s.title for s in self.sections]}")

    def select(self, cfg: Mapping[str, Any], title: str) -> dict[str, Any]:
        """The values of section ``title`` in resolved settings ``cfg`` (e.g. the model's keyword arguments)."""
        return {name: cfg[name] for name in self.names(title)}

    def _check(self, name: str, value: Any, where: str) -> Any:
        """``value`` checked (and, for text settings, converted to ``str``) for setting ``name``."""
        if name not in self.settings:
            raise ValueError(f"{where}: unknown setting {name!r}")
        s = self.settings[name]
        if value is None:
            return None
        if s.nargs is not None:
            if not isinstance(value, (list, tuple)) or len(value) != s.nargs:
                raise ValueError(f"{where}: {name} must be a list of {s.nargs} values, got {value!r}")
            return [self._check_one(name, s, v, where) for v in value]
        return self._check_one(name, s, value, where)

    @staticmethod
    def _check_one(name: str, s: Setting, value: Any, where: str) -> Any:
        kind = s.value_type
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is str:
            ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            value = str(value) if ok else value
        else:
            ok = True
        if not ok:
            raise ValueError(f"{where}: {name} must be {kind.__name__}, got {value!r}")
        if s.choices is not None and value not in s.choices:
            raise ValueError(f"{where}: {name} must be one of {list(s.choices)}, got {value!r}")
        if s.check is not None:
            problem = s.check(value)
            if problem:
                raise ValueError(f"{where}: {name} {problem}, got {value!r}")
        return value

    # -- the command line ------------------------------------------------------------------------
    @staticmethod
    def flag(name: str) -> str:
        """The long option of setting ``name``: ``n_train`` -> ``--n-train``."""
        return "--" + name.replace("_", "-")

    def default_text(self, name: str) -> str:
        """``"default: X"`` (the value without flags), then each other preset's value where it differs:
        ``"default: 500; --preset full: 3000"``."""
        default = self.preset(self.default_preset)[name]
        parts = [f"default: {_show(default)}"]
        for preset in self.presets:
            value = self.preset(preset)[name]
            if preset != self.default_preset and value != default:
                parts.append(f"--preset {preset}: {_show(value)}")
        return "; ".join(parts)

    def build_parser(self) -> argparse.ArgumentParser:
        """The task's parser: ``--preset``, ``--config`` and one flag per setting, every value ``None``
        unless given (so :meth:`resolve` can tell what the command line set)."""
        p = argparse.ArgumentParser(
            prog=f"python -m steerable.tasks {self.task}",
            description=self.description,
            epilog="Settings resolve in order: the declared defaults, the preset, the --config file, the flags.",
        )
        p.add_argument(
            "--preset",
            choices=sorted(self.presets),
            default=None,
            help=f"base settings; a --config file may name one, which replaces it [default: {self.default_preset}]",
        )
        p.add_argument(
            "--config",
            metavar="YAML",
            help="YAML file of settings (keys: the setting names, and preset), applied over the preset [default: none]",
        )
        for sec in self.sections:
            group = p.add_argument_group(sec.title)
            for name, s in sec.settings.items():
                help_text = f"{s.help} [{self.default_text(name)}]".replace("%", "%%")
                if s.is_switch:
                    group.add_argument(
                        self.flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
                    )
                else:
                    metavar = s.metavar or _METAVARS.get(s.value_type) if s.choices is None else s.metavar
                    group.add_argument(
                        self.flag(name),
                        dest=name,
                        type=s.value_type,
                        choices=s.choices,
                        metavar=metavar,
                        nargs=s.nargs,
                        default=None,
                        help=help_text,
                    )
        return p

    def resolve(self, args: argparse.Namespace) -> dict[str, Any]:
        """The settings of parsed ``args``: defaults, preset, ``--config`` YAML, explicit flags.

        The YAML file is a mapping of setting names (it may name a ``preset``, which replaces
        ``--preset``).  Raises ``ValueError`` naming the file for a non-mapping file, an unknown
        preset or key, or a value the setting does not accept.  ``backend`` values ``"auto"`` or
        empty become ``None`` (the registry's choice).
        """
        loaded: dict[str, Any] = {}
        preset = args.preset or self.default_preset
        config = getattr(args, "config", None)
        if config:
            loaded = _read_yaml(config)
            if "preset" in loaded:
                preset = loaded.pop("preset")
                if preset not in self.presets:
                    raise ValueError(f"{config}: unknown preset {preset!r}; expected one of {sorted(self.presets)}")
        cfg = self.preset(preset)
        for key, value in loaded.items():
            cfg[key] = self._check(key, value, str(config))
        for key in self.settings:
            value = getattr(args, key, None)
            if value is not None:
                cfg[key] = self._check(key, value, self.flag(key))
        if cfg.get("backend") in ("auto", ""):
            cfg["backend"] = None
        return cfg

    def parse(self, argv: Sequence[str] | None = None) -> dict[str, Any]:
        """``resolve(build_parser().parse_args(argv))``."""
        return self.resolve(self.build_parser().parse_args(argv))


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"--config {path}: no such file (pass the path of a YAML file of settings, e.g. configs/nbody_demo.yaml)"
        )
    try:
        with open(path) as fh:
            loaded = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return dict(loaded)
