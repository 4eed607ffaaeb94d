"""python -m kanarray: the kanarray command line (see kanarray.cli)."""
import sys

from .cli import main

sys.exit(main())
