"""Options every compute command shares, and the helpers that keep the CLI thin.

A command adopts the shared option set with two lines::

    add_common_options(p, out_default="runs/x")      # in add_parser
    apply_common(args)                                # first line of run

and then reads ``args.progress`` (``--no-progress`` and ``--json`` both hide progress bars),
``args.seed``, ``args.device`` (None: the library's default device), ``args.json`` and
``args.out`` (a folder; :func:`out_folder` creates it). ``apply_common`` sets the torch thread
count and seeds Python's, numpy's and torch's global generators, so code that draws from them
without a ``seed`` argument is reproducible too.

Defaults live in the library: :func:`library_option` adds an option whose default is ``None``
("not given"), and :func:`given` collects the options the user did give, so the library's own
defaults apply to the rest; ``--help`` shows the library's value, looked up when help is printed
(``fe-fast --help`` imports no library code).
"""
from __future__ import annotations

import argparse
import copy
import sys

#: The shared option set, in the order ``--help`` lists it.
COMMON_OPTIONS = ("--json", "--device", "--seed", "--threads", "--no-progress", "--out")
#: Compute commands converted to :func:`add_common_options` (tests check each lists the options).
COMMANDS = ("register", "register-batch", "cluster", "align", "teachers train", "train-gan", "locate", "edit",
            "edit-image")


# ----------------------------------------------------------------------------------------------
# Deprecated spellings
# ----------------------------------------------------------------------------------------------
def deprecation(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works for this release; ``new`` is the spelling to use."""
    print(f"fe-fast: warning: {old} is deprecated and will be removed in the next release; use {new}",
          file=sys.stderr)


class _Deprecated(argparse.Action):
    """Stores like the option it replaces, after a deprecation line on stderr."""

    def __init__(self, option_strings, dest, new=None, const=None, nargs=None, **kw):
        self.new = new
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        deprecation(option_string, self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, **kw) -> None:
    """Keep ``old`` working (hidden from ``--help``) for the option spelled ``new`` (already added):
    same destination, type and choices; a deprecation line on stderr when used."""
    target = next(a for a in p._actions if new in a.option_strings)
    if target.nargs == 0:  # store_true / store_false
        kw.setdefault("nargs", 0)
        kw.setdefault("const", target.const)
    else:
        kw.setdefault("type", target.type)
        kw.setdefault("choices", target.choices)
        kw.setdefault("metavar", target.metavar)
        if target.nargs is not None:
            kw.setdefault("nargs", target.nargs)
    p.add_argument(old, dest=target.dest, action=_Deprecated, new=new, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS, **kw)


# ----------------------------------------------------------------------------------------------
# Defaults from the library
# ----------------------------------------------------------------------------------------------
def library_default(source: str, name: str):
    """The default of parameter (or dataclass field) ``name`` of ``source`` (``"module:object"``)."""
    import dataclasses
    import importlib
    import inspect

    module, _, attr = source.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if dataclasses.is_dataclass(obj):
        f = {f.name: f for f in dataclasses.fields(obj)}[name]
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return inspect.signature(obj).parameters[name].default


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's library default (looked up only when help is printed)."""

    def _expand_help(self, action):
        source = getattr(action, "library_source", None)
        if source is not None:
            action = copy.copy(action)
            action.default = library_default(*source)
        return super()._expand_help(action)


def library_option(p, *flags, source: str, param: str = None, help: str = "", **kw):
    """Add an option that maps to parameter ``param`` of ``source`` (``"module:function"`` or a
    dataclass): default None, i.e. "use the library's default", which ``--help`` shows (unless the
    help text explains None itself, as in ``"(None: off)"``)."""
    dest = kw.pop("dest", None) or flags[0].lstrip("-").replace("-", "_")
    if "None:" not in help:  # else the help says what None (the default) means
        help = f"{help} (default %(default)s)".lstrip()
    action = p.add_argument(*flags, dest=dest, default=None, help=help, **kw)
    action.library_source = (source, param or dest)
    return action


def library_options(p) -> dict:
    """``{dest: (source, param)}`` of the options :func:`library_option` added to ``p``."""
    return {a.dest: a.library_source for a in p._actions if getattr(a, "library_source", None)}


def given(args, names) -> dict:
    """The options among ``names`` the user gave (not None): the keyword arguments to pass on."""
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def record_defaults(p) -> None:
    """Remember ``p``'s defaults on the parsed namespace (``args._cli_defaults``), for :func:`preset_values`."""
    p.set_defaults(_cli_defaults={a.dest: a.default for a in p._actions if a.default is not argparse.SUPPRESS})


def preset_values(args, preset: dict, rename=None) -> dict:
    """The entries of ``preset`` that apply: those whose option the user left at its default
    (options given explicitly win). ``rename`` maps a preset key to ``(dest, convert)`` where the
    option's unit differs from the library's (e.g. ``ema_img`` -> ``--ema-kimg``)."""
    out = {}
    for k, v in preset.items():
        dest, conv = (rename or {}).get(k, (k, None))
        if getattr(args, dest) == args._cli_defaults[dest]:
            out[dest] = conv(v) if conv is not None else v
    return out


# ----------------------------------------------------------------------------------------------
# The shared option set
# ----------------------------------------------------------------------------------------------
def add_common_options(p, *, out_default=None, out_required: bool = False, out_help: str = "output folder",
                       device_help: str = "cpu, cuda, cuda:1 ...", progress: bool = True) -> None:
    """``--json --device --seed --threads --no-progress --out`` on parser ``p`` (the order of
    :data:`COMMON_OPTIONS`). ``--device`` and ``--seed`` default to the library's (None = its
    default device; seed 0, every stochastic API's default)."""
    g = p.add_argument_group("common options (every compute command)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout (and no progress bars)")
    g.add_argument("--device", default=None, help=f"torch device: {device_help} (default: the library's)")
    g.add_argument("--seed", type=int, default=0, help="the run's random seed (default 0)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    g.add_argument("--no-progress", action="store_true",
                   help="hide progress bars" if progress else "hide progress bars (this command shows none)")
    g.add_argument("--out", metavar="DIR", default=out_default, required=out_required,
                   help=f"{out_help}" + ("" if out_default is None else " (default %(default)s)"))
    p.set_defaults(_common_options=True)


def apply_common(args) -> None:
    """Check and apply the shared options: threads, seeds, progress (``args.progress``), device."""
    import random

    import numpy as np
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    random.seed(args.seed)
    np.random.seed(args.seed % 2**32)
    torch.manual_seed(args.seed)
    args.progress = not (args.no_progress or args.json)
    if args.device is not None and args.device != "auto":
        try:
            dev = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"--device: not a device: {args.device!r}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available")


def out_folder(args, create: bool = True):
    """``args.out`` as a folder (``None`` when not given), created unless ``create=False``; an
    existing file there is a user error."""
    from pathlib import Path

    if args.out is None:
        return None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def print_json(obj) -> None:
    """The one JSON object of ``--json`` on stdout."""
    import json

    print(json.dumps(obj))
