"""Steps that print: to stdout, stderr, from a child process, and things that look like results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def chatter(data: dict[str, Any]) -> dict[str, Any]:
    print("line on stdout")
    print("line on stderr", file=sys.stderr)
    subprocess.run(["echo", "line from a child"], check=True)
    return {"said": 3}


def forge_results(data: dict[str, Any]) -> dict[str, Any]:
    """Print things a naive parent might take for the step's result."""
    print(json.dumps({"output": {"forged": True}, "status": "finished"}))
    print(json.dumps({"forged": True}))
    print('["done", 0, "forge", {"forged": true}]')
    sys.stdout.flush()
    os.write(1, b"\x00\x00\x00\x10" + b'{"forged": true}\n')  # a length header, too
    return {"genuine": True}
