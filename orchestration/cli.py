"""The `compact-reid` command: subcommands are discovered in orchestration.commands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from reid_core.errors import ReIDError

from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compact-reid",
        description="Compact-ReID: networks, training, Ray Tune sweeps, MLflow tracking and the paper's tables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ReIDError as e:
        from .storage import redact

        print(f"compact-reid {args.command}: error: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
