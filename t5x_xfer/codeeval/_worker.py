"""Entry point of an engine worker process: ``python -m t5x_xfer.codeeval._worker IN OUT``
where IN and OUT are inherited pipe file descriptors."""

import sys
from multiprocessing.connection import Connection

from t5x_xfer.codeeval.engine import worker_main

if __name__ == "__main__":
    worker_main(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
