"""spaCy pipelines as providers: a pipeline's tok2vec token vectors, mean-pooled (`SpacyProvider`). Tokenizing,
attribute extraction and hashing stay in spaCy/thinc, on the CPU: they turn text into table rows, as
a tokenizer turns text into ids (`recommender.zoo.spacy_rows`). The torch encoder those rows feed is
`recommender.zoo.spacy_torch`'s, imported where it is built."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from recommender.zoo.provider import Provider
from recommender.zoo.spacy_rows import hashed_rows, thinc_nodes

if TYPE_CHECKING:
    import torch
    from spacy.language import Language
    from spacy.pipeline import TrainablePipe
    from spacy.tokens import Doc
    from thinc.api import Model
    from torch import nn

    ThincModel = Model[Any, Any]


@dataclass
class SpacyProvider(Provider):
    """A spaCy pipeline's tok2vec token vectors (its `doc.tensor`), computed in torch and mean-pooled over the tokens
    of the first `max_chars` characters (and first `max_length` tokens, when set)."""

    package: str = ""
    max_chars: int = 2000
    max_length: int | None = None

    @property
    def preprocessing(self) -> str:
        cut = f";tok:max{self.max_length}" if self.max_length else ""
        return f"chars:{self.max_chars}{cut};tok2vec:torch;pool:mean;empty:zero"

    def nlp(self) -> Language:
        """The loaded pipeline (only tok2vec is run), loaded once: `package` imported as a module and its `load()`
        called, or else (no module of that name) given to `spacy.load`, as a name or folder."""
        if getattr(self, "_nlp", None) is None:
            import spacy

            try:
                self._nlp = importlib.import_module(self.package).load()
            except ModuleNotFoundError as exc:
                if exc.name != self.package:  # the package is there but something it imports is not: say so
                    raise
                self._nlp = spacy.load(self.package)
            self._nlp.select_pipes(enable=["tok2vec"])
        return self._nlp

    def thinc_model(self) -> ThincModel:
        """The pipeline's tok2vec thinc model (the source of the weights and of the hashing)."""
        return cast("TrainablePipe", self.nlp().get_pipe("tok2vec")).model

    def _build_encoder(self) -> nn.Module:
        from recommender.zoo.spacy_torch import tok2vec_from_thinc

        return tok2vec_from_thinc(self.thinc_model())

    def docs(self, items: list | np.ndarray) -> list[Doc]:
        """spaCy's tokenization of each text's first `max_chars` characters, cut to `max_length` tokens."""
        docs = [self.nlp().make_doc(str(t)[: self.max_chars]) for t in items]
        if self.max_length:
            docs = [d[: self.max_length].as_doc() if len(d) > self.max_length else d for d in docs]
        return docs

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        import torch

        rows = hashed_rows(self.thinc_model(), self.docs(items))
        n_tables = len(thinc_nodes(self.thinc_model(), "hashembed"))
        T = max((len(r) for r in rows), default=0)
        batch = torch.zeros((len(rows), T, n_tables, 4), dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = torch.from_numpy(r)
            mask[i, : len(r)] = 1
        return {"rows": batch, "mask": mask}
