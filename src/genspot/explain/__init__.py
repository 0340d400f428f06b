"""Explanations: heat maps over the pixels that decided a verdict, and how faithful they are.

Methods: `cam` (Zhou et al. 2016), pytorch-grad-cam's `gradcam`, `gradcam++`, `scorecam`,
`layercam`, `eigencam`, and attention `rollout` (Abnar & Zuidema 2020) for the ViT.
"""

from genspot.explain.methods import METHODS, TARGETS, explain_batch
from genspot.explain.layers import default_target_layer, resolve_layer

__all__ = ["METHODS", "TARGETS", "default_target_layer", "explain_batch", "resolve_layer"]
