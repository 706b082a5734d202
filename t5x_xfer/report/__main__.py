"""``python -m t5x_xfer.report``: see ``t5x_xfer.report.write.main``."""

import sys

from t5x_xfer.report.write import main

sys.exit(main())
