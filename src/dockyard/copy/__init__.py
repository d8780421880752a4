"""The copy engine: plan the descriptor graph, then execute it between targets.

`copy_image` is regctl's `image copy`; `plan_copy` and `execute` are its two halves (a sync
dry run prints a plan without executing it). Renderers for progress are in `copy.progress`,
which is the only module here that knows about terminals.
"""

from dockyard.copy.events import Event, ProgressSink
from dockyard.copy.execute import execute
from dockyard.copy.graph import BlobNode, CopyPlan, ManifestNode, Role
from dockyard.copy.image import copy_image
from dockyard.copy.limits import Limits
from dockyard.copy.options import CopyOptions, ReferrerFilter
from dockyard.copy.plan import plan_copy
from dockyard.copy.result import CopyError, CopyResult, Failure, SparseIndexRefused

__all__ = [
    "BlobNode",
    "CopyError",
    "CopyOptions",
    "CopyPlan",
    "CopyResult",
    "Event",
    "Failure",
    "Limits",
    "ManifestNode",
    "ProgressSink",
    "ReferrerFilter",
    "Role",
    "SparseIndexRefused",
    "copy_image",
    "execute",
    "plan_copy",
]
