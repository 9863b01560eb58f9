"""`python -m workbench.cli`: the same command as the `workbench` script (tests start servers this way)."""

from workbench.cli import main

main()
