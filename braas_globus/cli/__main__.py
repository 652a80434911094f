"""`python -m braas_globus.cli`: the same as the `braas-globus` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
