"""``python -m neuralcodec.train [hydra overrides]``."""

import sys

from neuralcodec.train.run import main

sys.exit(main())
