"""The ``fe-fast`` command line. Each sub-command lives in its own module of this package and
defines ``add_parser(subparsers)``; modules are discovered, so adding a command touches no other file.
Heavy imports happen inside each command's ``run`` so ``fe-fast --help`` stays fast."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from fe_fast import __version__
from fe_fast.cli._common import add_common_options, apply_common  # noqa: F401  (the shared option set)


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fe-fast",
        description="Compiled kernels and methods for face editing (HOUV, DERC, StyleGAN2, S-space editing).",
    )
    parser.add_argument("--version", action="version", version=f"fe-fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"fe-fast {args.command}: {category.__name__}: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line  # library warnings (e.g. a subsampled cloud): one line each
            return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"fe-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
