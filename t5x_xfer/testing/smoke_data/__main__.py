"""``python -m t5x_xfer.testing.smoke_data --out DIR ...``: write the smoke data."""

import sys

from t5x_xfer.testing.smoke_data import main

if __name__ == "__main__":
    sys.exit(main())
