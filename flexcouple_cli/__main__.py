"""``python -m flexcouple_cli ...``: the ``flexcouple`` command (also for ``torchrun -m flexcouple_cli``)."""
import sys

from flexcouple_cli import main

sys.exit(main())
