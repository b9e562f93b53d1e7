"""``python -m delivery`` is the ``delivery`` command."""

from delivery.cli import main

main()
