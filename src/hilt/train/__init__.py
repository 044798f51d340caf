"""Training stage: reward-model refresh, SFT refresh, classifiers from reviewed labels.

Heavy libraries (torch, transformers, TRL, scikit-learn) are imported inside the
functions that need them; importing this package is cheap.
"""
