"""The global options, in this process with click's runner and no AWS: taken before and after
every subcommand, the value after it winning, the environment read once (before it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lock_janitor_cli.errors import NotFound
from lock_janitor_cli.main import cli
from lock_janitor_cli.options import GLOBALS, merged
from lock_janitor_cli.stack import Stack, Target

COMMANDS = (
    ("status",),
    ("release", "nightly"),
    ("run", "nightly"),
    ("reconcile",),
    ("replay-dlq",),
)
Invoke = Callable[..., Result]
NO_AWS_SETTINGS = {"AWS_REGION": None, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": None}


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The command with no samconfig.toml about, whose stack is never found: the error says
    which target it looked for."""

    def find(target: Target) -> Stack:
        raise NotFound(
            f"looked for {target.stack} in {target.region} as {target.profile} at "
            f"{target.endpoint_url}"
        )

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Stack, "find", staticmethod(find))

    def run(*args: str, **env: str) -> Result:
        runner = CliRunner(mix_stderr=False, env={**NO_AWS_SETTINGS, **env})
        return runner.invoke(cli, list(args))

    return run


def looked_for(result: Result) -> str:
    assert result.exit_code == 2, result.output
    return result.stderr.strip().removeprefix("lock-janitor: looked for ")


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_global_option_is_taken_before_and_after_the_command(
    invoke: Invoke, command: tuple[str, ...]
) -> None:
    given = ("--stack", "s", "--region", "r", "--profile", "p", "--endpoint-url", "http://e")
    assert looked_for(invoke(*command, *given)) == "s in r as p at http://e"
    assert looked_for(invoke(*given, *command)) == "s in r as p at http://e"


def test_the_value_after_the_command_wins_and_the_environment_is_read_once(
    invoke: Invoke,
) -> None:
    env = {"LOCK_JANITOR_STACK": "from-env", "AWS_REGION": "env-region"}
    assert looked_for(invoke("status", **env)) == "from-env in env-region as None at None"
    assert looked_for(invoke("--stack", "b", "status", **env)) == (
        "b in env-region as None at None"
    )
    assert looked_for(invoke("--stack", "b", "status", "--stack", "c", **env)) == (
        "c in env-region as None at None"
    )
    assert looked_for(invoke("--region", "x", "release", "n", "--region", "y", **env)) == (
        "from-env in y as None at None"
    )


def test_version_and_help_after_a_command(invoke: Invoke) -> None:
    version = invoke("status", "--version")
    assert (version.exit_code, version.stdout.split()[0]) == (0, "lock-janitor,")
    for command in COMMANDS:
        shown = invoke(command[0], "--help")
        assert shown.exit_code == 0
        assert "Example" in shown.stdout
        for g in GLOBALS:
            assert g.flag in shown.stdout, (command, g.flag)


def test_an_unreadable_samconfig_is_one_line_not_a_traceback(
    invoke: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "samconfig.toml").write_text("not = [toml")
    result = invoke("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("lock-janitor: cannot read ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_merged_takes_after_over_before_and_none_as_not_given() -> None:
    before = {"stack": "b", "region": "r", "profile": None, "endpoint_url": None, "as_json": True}
    after = {"stack": "a", "region": None, "profile": None, "endpoint_url": "e", "as_json": None}
    assert merged(before, after) == {
        "stack": "a",
        "region": "r",
        "profile": None,
        "endpoint_url": "e",
        "as_json": True,
    }
