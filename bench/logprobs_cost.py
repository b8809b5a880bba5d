"""What logprobs cost the batch: tokens/s at 32 concurrent jobs without them and with `logprobs` 5 on every job.

`python -m bench.logprobs_cost [--rounds 2] [--no-record]` builds the bench model, then runs the worker's batching
engine in a fresh process per variant (plain sampled jobs; the same jobs each asking for their tokens' logprobs with
5 alternatives, captured per request in the batch), taking turns round after round, and prints the best tokens/s of
each and their ratio; the figures are appended to bench/RESULTS.md unless --no-record.
`python -m bench.logprobs_cost --one plain|logprobs` is one such process (the JSON figures are stdout's last line).
"""

from __future__ import annotations

import sys

from bench.rules_cost import compare

VARIANTS = {"plain": {}, "logprobs": {"logprobs": 5}}
LABELS = {"plain": "plain", "logprobs": "logprobs 5 on every job (raw log_softmax captured per request)"}

if __name__ == "__main__":
    sys.exit(compare("bench.logprobs_cost", __doc__, VARIANTS, LABELS, "logprobs cost", "logprobs"))
