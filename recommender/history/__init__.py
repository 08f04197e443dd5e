"""The training-history store: fine-tuning jobs, model and dataset features, transferability scores.

`open_store(url)` opens a SQLite file (the default) or a PostgreSQL database by SQLAlchemy URL;
`Store.pair_table(protocol, ...)` gives the (model, dataset) table the recommenders learn from.
"""

from recommender.history.engine import default_path, resolve_url
from recommender.history.store import IngestError, Store, open_store

__all__ = ["IngestError", "Store", "default_path", "open_store", "resolve_url"]
