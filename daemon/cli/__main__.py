"""`python -m privmask.daemon.cli`: the same as the `privmask` command."""

import sys

from privmask.daemon.cli import main

sys.exit(main())
