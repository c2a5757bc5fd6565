"""Lookalike audiences: the people who look like a segment's members but are not in it.

`kairos lookalike --seed buyers --size N` reads every profile, describes each person
as numbers (`features.py`: recency, frequency, the rules' order and spend aggregates,
the categories they browse, the channels they can be reached and engage on), trains
a model of the seed against a sample of everyone else (`model.py`, scikit-learn),
scores everyone else who has an email or a phone (what an ad platform matches on),
and writes the top N as a stored segment (`build.py`, `edge/store/segments.py`).

The rules' segments are recomputed on each of a person's events and kept on the
profile, so the lookalike cannot live there; a stored segment is a set of its own,
which the ad-audience export reads like any segment (`edge/store/audiences.py`):
consent, hashing and what changed since the last export are the exporter's, once.

Everything is deterministic for the same data and `now`: the sample is drawn with a
fixed seed from the people sorted by id, the model has a fixed random state, and
equal scores are ranked by profile id.
"""

from edge.worker.lookalike.build import LookalikeError, LookalikeReport, build_lookalike

__all__ = ["LookalikeError", "LookalikeReport", "build_lookalike"]
