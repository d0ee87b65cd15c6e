"""A hostile plugin: importing it calls sys.exit."""

import sys

sys.exit("bye")
