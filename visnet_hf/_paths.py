"""Where visnet_hf keeps what it computes once (backbone features, unpacked text encoders)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$VISNET_CACHE/<kind>`` (default ``~/.cache/visnet_hf/<kind>``), read when asked, so a changed
    environment variable counts."""
    return Path(os.environ.get("VISNET_CACHE", Path.home() / ".cache" / "visnet_hf")) / kind
