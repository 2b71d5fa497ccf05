"""``python -m pfvit <stage> key=value …`` (also ``accelerate launch -m pfvit <stage> …``): see pfvit/cli."""

import sys

from .cli import main

sys.exit(main())
