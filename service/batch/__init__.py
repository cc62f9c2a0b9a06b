"""Batch scoring of a CSV of new rows (`dropserve predict`): streamed in chunks by `reader`,
scored by a bundle's engines in process or by a running server (`remote`), summarised into
`columns`."""

from service.batch.remote import RemoteScorer
from service.batch.score import LocalScorer, ScoreOptions, Scorer, ScoreReport, score_csv

__all__ = ["LocalScorer", "RemoteScorer", "ScoreOptions", "ScoreReport", "Scorer", "score_csv"]
