import sys

from equity_daemon.cli import main

sys.exit(main())
