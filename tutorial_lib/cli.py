"""The command line: ``python -m tutorial_lib env`` and ``python -m tutorial_lib train ...``.

Each subcommand is a ``_cmd_*`` function taking the parsed arguments; ``build_parser`` wires them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def _cmd_env(args: argparse.Namespace) -> int:
    from tutorial_lib.env import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["embedded_data_offline"] else 1


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="python -m tutorial_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = sub.add_parser("env", help="print the environment report (versions, device, threads, data)")
    env.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    env.set_defaults(func=_cmd_env)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)
