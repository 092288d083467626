"""The command lines that start aiobgproc's own child processes: the executor, the warm
executor (zygote) and the guard, all with one boot line.

``python -I [-S] -c BOOT aiobgproc._child.MODULE N ARG1..ARGN PATH...``: the boot line puts
the PATH entries in front of ``sys.path``, imports that module and exits with
``main([ARG1, ..., ARGN])``. ``-I`` ignores ``PYTHON*`` variables and the user site; ``site``
itself runs unless ``site=False`` (``-S``), so ``.pth`` import hooks such as editable
installs work in a child as in the manager. The executor is given only the package's own
root (the manager's whole ``sys.path`` travels with its job); the warm executor and the
guard get the manager's ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

BOOT = (
    "import sys;n=int(sys.argv[2]);sys.path[:0]=[p for p in sys.argv[3+n:] if p];"
    "m=__import__(sys.argv[1],fromlist=['main']);"
    "sys.exit(m.main(sys.argv[3:3+n]))"
)
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The directory that holds the ``aiobgproc`` package."""


def child_argv(
    python: str | None,
    module: str,
    args: Sequence[str] = (),
    *,
    path: Sequence[str] = (PACKAGE_ROOT,),
    site: bool = True,
) -> list[str]:
    """The command line that runs ``aiobgproc._child.<module>.main(args)``."""
    flags = ["-I"] if site else ["-I", "-S"]
    name = f"aiobgproc._child.{module}"  # in full: ps and tests can tell our children apart
    return [python or sys.executable, *flags, "-c", BOOT, name, str(len(args)), *args, *path]
