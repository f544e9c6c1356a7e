"""Past one process: a guest mapped over many inputs (a local pool or Ray), and graphs served by Ray actors.

The host (:mod:`wasinn_jupyter.host`) knows nothing of this package; it sits on the host's public API. Ray is an
optional extra (``pip install 'wasinn-jupyter[ray]'``) and is imported only when a Ray path is asked for.
"""

from __future__ import annotations

from .inputs import expand_inputs
from .job import InputResult, MapJob, Preload
from .mapping import MapError, MapSummary, Workers, map_inputs

__all__ = ["InputResult", "MapError", "MapJob", "MapSummary", "Preload", "Workers", "expand_inputs", "map_inputs"]
