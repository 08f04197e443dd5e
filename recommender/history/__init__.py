"""The training-history store: fine-tuning jobs, model and dataset features, transferability scores.

`open_store(url)` opens a SQLite file (the default) or a PostgreSQL database by SQLAlchemy URL;
`Store.pair_table(protocol, ...)` gives the (model, dataset) table the recommenders learn from.
The names below load on first use (PEP 562), so that `recommender --help` does not import SQLAlchemy.
"""

from recommender.lazy import lazy_exports

_EXPORTS = {"default_path": "url", "resolve_url": "url", "IngestError": "store", "Store": "store",
            "open_store": "store"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
