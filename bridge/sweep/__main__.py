import sys

from ..running.stopping import exit_within
from .command import COMMAND, main

code = main()
exit_within(30, code, COMMAND)  # Dask's threads and worker processes must not hold the command past its end
sys.exit(code)
