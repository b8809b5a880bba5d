"""The chaos soak (`make soak`): the whole service under every kind of client while a nemesis kills, pauses and
restarts its processes, then Jepsen-style checks of what the clients were told against what the service did.

It lives under tests/ because it is test machinery (it reuses the fault suite's receivers, environment and
process commands); `python -m tests.soak` is its thin runner, and tests/faults/test_soak.py runs a short one.
"""
