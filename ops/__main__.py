"""`python -m ops`: run the ops worker."""

import sys

from ops.main import main

sys.exit(main())
