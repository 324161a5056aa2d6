"""The exec channels of Kubernetes' ``v4``/``v5.channel.k8s.io`` WebSocket protocol.

Every binary frame starts with one byte naming its channel (see
``docs/kube-wire-protocol.md``). The client (``_transport``), the sandbox's exec endpoint,
the events and the renderers all speak of channels by these names.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CLOSE", "RESIZE", "STATUS", "STDERR", "STDIN", "STDOUT", "Stream"]


class Stream(IntEnum):
    """Which output stream a chunk came from; equal to its channel number (1 or 2)."""

    STDOUT = 1
    STDERR = 2


STDIN = 0
STDOUT = Stream.STDOUT
STDERR = Stream.STDERR
#: The exec's final ``Status`` (exit code or failure), JSON.
STATUS = 3
#: Terminal size changes from the client, JSON ``{"Width": w, "Height": h}``.
RESIZE = 4
#: ``v5`` only: the client closes one of its channels (payload: the channel number).
CLOSE = 255
