"""Deployment: fast inference modules, autotuned plans and export."""

from .optimize import OptimizedModel, optimize_for_inference

__all__ = ["optimize_for_inference", "OptimizedModel"]
