import sys

from sim.cli import cli_main

sys.exit(cli_main())
