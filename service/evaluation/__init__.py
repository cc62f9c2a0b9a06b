"""Uncertainty quality of a bundle's served engines: `dropserve evaluate` (`run`), its labelled
data (`labelled`), the per-task reports (`regression`, `classification`) and `plots`. The scores
themselves are in service.scoring, shared with training and the UCI benchmark.
"""
