"""``python -m neuralcodec`` is the ``codec`` command."""

import sys

from neuralcodec.cli import main

sys.exit(main())
