"""How the service's processes are started on one machine: `make run` (`llmq-run`, `python -m launcher`), the
embedded Redis, each process's command line and the supervisor that restarts them; the tests start theirs the same way.
"""
