"""``python -m tuneforge.trainer``: the same as ``tuneforge train``."""

import sys

from tuneforge.trainer.main import main

sys.exit(main())
