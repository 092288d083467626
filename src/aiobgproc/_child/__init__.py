"""Code that runs in the child processes aiobgproc starts: the executor (runs steps), the
warm executor (forks executors), the guard (kills a dead manager's children).

These modules import nothing heavy at import time (no asyncio, typing, dataclasses, psutil,
sqlite3: ~40 ms and a bigger heap to fork), which tests/test_package.py checks: a cold
executor starts in ~13 ms, and every page the warm executor touches is copied into each
child it forks. That is why some small things exist twice, here and in ``_os`` (a boot
clock reader, a pidfd wait, stopping children: the executor and the warm executor stop
their own children by process group, SIGTERM then SIGKILL, without the manager's tree
finder, which needs psutil): each copy says so.
"""
