"""Batch scoring of a CSV of new rows with a bundle, in process (`dropserve predict`):
streamed in chunks by `reader`, scored by both engines, summarised into `columns`."""

from service.batch.score import ScoreOptions, ScoreReport, score_csv

__all__ = ["ScoreOptions", "ScoreReport", "score_csv"]
