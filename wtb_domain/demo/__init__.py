"""The shipped demo: a deterministic, offline question-answering workflow over a small corpus.

Load it with ``wtb_domain.demo.qa:workflow``; its dataset is ``wtb_domain.demo.qa.DATASET_PATH``.
"""
