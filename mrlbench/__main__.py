"""``python -m mrlbench``."""

from mrlbench.cli import main

main()
