"""Numpy-only analysis: metrics, panoptic merging, voting, flow warping, RoI geometry."""
