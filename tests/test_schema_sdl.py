"""The committed schema.graphql is what `callmeter schema` prints (regenerate it with
`callmeter schema > schema.graphql` after changing the schema)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_sdl_is_the_schema():
    printed = subprocess.run(
        [sys.executable, "-m", "callmeter", "schema"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    committed = (ROOT / "schema.graphql").read_text()
    assert printed == committed, "schema.graphql is stale: run `callmeter schema > schema.graphql`"
    assert "type Query" in printed and "costBreakdown: [CostComponent!]!" in printed
