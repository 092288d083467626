"""The tag every child of a run carries in its environment, so that a sweep finds what
escaped its session (see _os/tree.py). Imported by the manager's side and by the children
alike: it imports nothing."""

TAG_VARIABLE = "AIOBGPROC_PROCESS_ID"
"""Set in every child's environment to the process id: finds descendants that escaped."""
CLAIM_VARIABLE = "AIOBGPROC_CLAIM"
"""Set beside it to the claim's token, so a sweep for one run never touches the next."""
TAG_SPACE_VARIABLE = "AIOBGPROC_TAG_SPACE"
"""In the warm executor's own environment only: room that each forked executor overwrites
with its run's tag, in place (see _child/zygote.py, _retag)."""
TAG_SPACE_SIZE = 96
"""Bytes of that room: ``AIOBGPROC_PROCESS_ID=<32 hex>`` and ``AIOBGPROC_CLAIM=<token>``."""


def make_tag(process_id: str, token: int) -> str:
    """What identifies the processes of one run of a process (one claim)."""
    return f"{process_id}/{token}"
