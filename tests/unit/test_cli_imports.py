"""The CLI's start-up does not import the Azure SDK (commands that read the store stay fast;
the Batch and Key Vault clients are imported when a command first needs them)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_azure_module() -> None:
    code = (
        "import sys, polysync.cli.main; "
        "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
