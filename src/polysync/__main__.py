"""`python -m polysync` is the `polysync` command."""

from polysync.cli.main import main

main()
