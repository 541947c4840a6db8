"""``python -m keyvault_emulator [serve] ...`` — same as the ``keyvault-emulator`` command."""

from __future__ import annotations

import sys

from keyvault_emulator.cli import main

sys.exit(main())
