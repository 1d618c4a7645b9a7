"""``python -m zse.cli``: the command line (as ``zse`` and ``python -m zse``)."""

import sys

from . import main

sys.exit(main())
