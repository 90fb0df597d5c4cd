"""What both test files need of the repository: its paths and its CLI.

The CLI binary is $STRATA_BIN, else the newer of target/release/strata and
target/debug/strata.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "rules" / "proactive-care"
LIST_ORDER = [("practice_code", "ascending"), ("rank", "ascending")]


def strata_bin() -> Path:
    env = os.environ.get("STRATA_BIN")
    if env:
        return Path(env)
    # The newest build: a stale release binary must not stand in for the code under test.
    built = [REPO / "target" / p / "strata" for p in ("release", "debug")]
    built = [p for p in built if p.is_file()]
    if not built:
        pytest.skip("no strata binary: build one or set STRATA_BIN")
    return max(built, key=lambda p: p.stat().st_mtime)


def cli_run(pack: Path, data: Path, out: Path, *extra: str) -> Path:
    """`strata run` with the CLI; returns the run folder it printed."""
    proc = subprocess.run(
        [str(strata_bin()), "--log-level", "warn", "run", "--pack", str(pack),
         "--data", str(data), "--out", str(out), *extra],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir(), proc.stdout
    return run_dir
