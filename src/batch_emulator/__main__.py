"""``python -m batch_emulator [serve] ...`` — same as the ``batch-emulator`` command."""

from __future__ import annotations

import sys

from batch_emulator.cli import main

sys.exit(main())
