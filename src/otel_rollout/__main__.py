"""``python -m otel_rollout``: the command line."""

import sys

from otel_rollout.cli import main

sys.exit(main())
