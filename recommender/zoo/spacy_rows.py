"""A loaded spaCy/thinc tok2vec model read on the CPU: its layers by name (`thinc_nodes`), and each doc's rows of
its hash tables (`hashed_rows`). Both the provider (`recommender.zoo.spacy_provider`) and the torch re-implementation
(`recommender.zoo.spacy_torch`) read the model through them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from thinc.api import Model
    from thinc.types import Ints1d

    ThincModel = Model[Any, Any]


def thinc_nodes(model: ThincModel, name: str) -> list[ThincModel]:
    """The layers of a thinc model named `name`, in `walk()` order (breadth-first)."""
    return [node for node in model.walk() if node.name == name]


def hashed_rows(model: ThincModel, docs: list[Doc]) -> list[np.ndarray]:
    """Per doc, the table rows of its tokens (tokens x tables x 4, int64): spaCy's own feature extractor, then
    each HashEmbed's MurmurHash of its attribute column with its seed, modulo its number of rows."""
    extract = thinc_nodes(model, "extract_features")[0]
    embeds = thinc_nodes(model, "hashembed")
    out = []
    for doc, attrs in zip(docs, extract.predict(docs), strict=True):
        if not len(doc):
            out.append(np.zeros((0, len(embeds), 4), np.int64))
            continue
        attrs = np.asarray(attrs, dtype=np.uint64).reshape(len(doc), -1)
        # thinc types its arrays by protocols of its own; at run time they are these numpy arrays
        keys = [model.ops.hash(cast("Ints1d", np.ascontiguousarray(attrs[:, e.attrs["column"]])), e.attrs["seed"])
                % e.get_dim("nV") for e in embeds]
        out.append(np.stack(keys, axis=1).astype(np.int64))
    return out
