"""`python -m stylehost`: the same command as the `stylehost` console script."""

import sys

from stylehost.cli import main

sys.exit(main())
