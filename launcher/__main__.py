"""`python -m launcher`: `make run` (the same program as `llmq-run`)."""

import sys

from launcher.run_local import main

sys.exit(main())
