"""`python -m engine`: the `facesynth` command."""

import sys

from engine.entry import main

sys.exit(main())
