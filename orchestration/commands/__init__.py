"""One module per `compact-reid` subcommand group.

Each module defines `register(subparsers) -> None`, which adds its parser(s) and sets
`func` (called with the parsed args; returns an exit code). Modules are discovered
automatically; keep heavy imports (torch, ray, mlflow) inside the functions so that
`compact-reid --help` stays fast.
"""
