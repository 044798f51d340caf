"""hilt: the human-in-the-loop toolkit for assistant post-training.

The loop's stages each live in a module named after them: ``events`` (ingest),
``review`` (escalation, triage, assignment, adjudication), ``quality`` (agreement,
aggregation, calibration, drift), ``data`` (selection, dataset versions), ``train``
(reward model, SFT, classifiers), ``evals`` (regression checks) and ``gate`` (release gate).
"""

__version__ = "0.1.0"
