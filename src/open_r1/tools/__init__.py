"""Tools a model can call in an episode, as TRL's `GRPOTrainer` runs them (`tools=`, `environment_factory=`):
`zoom` (a full-resolution crop of the photo) and `lookup` (a place's coordinates from the offline GeoNames
table), plus a user's own (`--tool_module`).

    from open_r1.tools import build_toolset, load_tool_module
    toolset = build_toolset(["zoom", "lookup"], max_pixels=401408)
    GRPOTrainer(..., tools=toolset.functions, environment_factory=toolset.environment_factory)
"""

from open_r1.tools.lookup import lookup
from open_r1.tools.registry import PHOTO_TOOLS, TOOLS, ToolModuleError, ToolSet, build_toolset, load_tool_module
from open_r1.tools.zoom import PhotoTools, crop_region

__all__ = [
    "PHOTO_TOOLS",
    "TOOLS",
    "PhotoTools",
    "ToolModuleError",
    "ToolSet",
    "build_toolset",
    "crop_region",
    "load_tool_module",
    "lookup",
]
