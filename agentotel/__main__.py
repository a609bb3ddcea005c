"""`python -m agentotel ...` runs the `agentotel` command."""

import sys

from .cli import main

sys.exit(main())
