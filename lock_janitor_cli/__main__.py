"""`python -m lock_janitor_cli`: the same as the `lock-janitor` command."""

from __future__ import annotations

from lock_janitor_cli.main import main

main()
