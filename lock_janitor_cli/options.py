"""The options of the whole command, defined once: `--stack`, `--region`, `--profile`,
`--endpoint-url`, `--json` and `--version` are taken before the subcommand and after it alike
(`lock-janitor --json status`, `lock-janitor status --json`). Given in both places, the value
after the subcommand wins. The environment fills them in once, before the subcommand: a variable
never overrides an option given on the command line, wherever it was given."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Global:
    """One option of the whole command."""

    name: str
    """The parameter's name, as click passes it."""
    flag: str
    help: str
    envvar: str | None = None
    is_flag: bool = False


GLOBALS: tuple[Global, ...] = (
    Global(
        "stack",
        "--stack",
        "The stack [default: samconfig.toml's stack_name, else lock-janitor].",
        envvar="LOCK_JANITOR_STACK",
    ),
    Global("region", "--region", "Its region [default: your AWS configuration].", "AWS_REGION"),
    Global("profile", "--profile", "The AWS profile to use.", "AWS_PROFILE"),
    Global(
        "endpoint_url",
        "--endpoint-url",
        "Another endpoint for every AWS call (the local emulator).",
        envvar="AWS_ENDPOINT_URL",
    ),
    Global("as_json", "--json", "Print JSON for scripts instead of tables.", is_flag=True),
)


def global_options(*, from_env: bool) -> Callable[[F], F]:
    """Every global option, on the group (`from_env`: its environment variables are read there)
    or on a command (none read: the group already did). Not given, an option is None."""

    def apply(f: F) -> F:
        f = click.version_option(package_name="lock-janitor", prog_name="lock-janitor")(f)
        for g in reversed(GLOBALS):
            f = click.option(
                g.flag,
                g.name,
                envvar=g.envvar if from_env else None,
                is_flag=g.is_flag,
                default=None,
                help=g.help,
            )(f)
        return f

    return apply


def merged(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Each global option's value: as given after the subcommand, else as given before it (or
    read from the environment), else None."""
    return {
        g.name: before.get(g.name) if after.get(g.name) is None else after[g.name] for g in GLOBALS
    }
