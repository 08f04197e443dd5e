"""recommender.contracts: the one home of the pair-table columns, facts, score names, protocol names and shared
rules -- checked against the names written out here, and against every place that uses them."""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recommender import contracts
from recommender.errors import UserError


def test_pair_table_columns_as_docs_contracts_lists_them():
    assert contracts.PAIR_TABLE_COLUMNS == (
        "model", "dataset", "performance", "selected_by", "family", "pretrain_dataset", "params_m", "gmacs",
        "input_size", "imagenet_top1", "examples", "classes", "modality", "group", "examples_full", "protocol",
        "p_history", "p_examples", "p_train_fraction", "p_epochs", "p_lr_min", "p_lr_max", "p_optimizer", "p_peft",
        "p_lora_r", "p_split")
    assert contracts.score_column("logme") == "score_logme"
    assert contracts.score_name("score_hscore_reg") == "hscore_reg"
    assert contracts.is_score_column("score_x") and not contracts.is_score_column("params_m")


def test_every_user_of_the_facts_takes_them_from_contracts():
    from recommender.history import schema
    from recommender.history.records import ID_COLUMN
    from recommender.models.features import BLOCKS
    from recommender.zoo.provider import ModelFacts

    for kind, facts in [("models", contracts.MODEL_FACTS), ("datasets", contracts.DATASET_FACTS),
                        ("protocols", contracts.PROTOCOL_FACTS)]:
        table = schema.metadata.tables[kind]
        assert {c.name for c in table.columns} - {ID_COLUMN[kind], "source", "extra"} == set(facts)
    assert tuple(f.name for f in dataclasses.fields(ModelFacts)) == contracts.MODEL_FACTS
    assert ModelFacts(family="vit", params_m=86.0).as_row().keys() == set(contracts.MODEL_FACTS)
    assert set(BLOCKS["m_side"].categorical + BLOCKS["m_side"].scalar) == set(contracts.MODEL_FACTS)
    assert set(BLOCKS["d_side"].categorical + BLOCKS["d_side"].scalar) == set(contracts.DATASET_FACTS)
    assert set(BLOCKS["p"].categorical + BLOCKS["p"].scalar) <= set(contracts.PROTOCOL_COLUMNS)


def test_contracts_import_no_heavy_library():
    code = "import sys, recommender.contracts; print(sorted(m for m in ('numpy', 'pandas', 'sqlalchemy') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "name"), [
    ((":800", 25.0), "vtab1k"),
    ((":800", 50.0), "shift::800:50ep"),
    ((":80%", 10.0), "shift::80%:10ep"),
    ((None, None), "shift:unsliced:?ep"),
])
def test_shift_protocol_names(args, name):
    assert contracts.shift_protocol(*args) == name


@pytest.mark.parametrize(("args", "name"), [
    ((":0.7", None, None, 30.0), "transfergraph:70pct-30ep"),
    ((":70%", None, None, 30.0), "transfergraph:70pct-30ep"),
    ((":800", "lora", 8.0, 3.0), "transfergraph:800ex-lora-r8-3ep"),
    ((None, "full", None, 5.0), "transfergraph:full-5ep"),
    ((None, "lora", 1.0, 4.0), "transfergraph:lora-r1-4ep"),
    (("train[:5]", None, None, None), "transfergraph:train[:5]-?ep"),
])
def test_transfergraph_protocol_names(args, name):
    assert contracts.transfergraph_protocol(*args) == name


def test_slice_size_and_finetune_protocol():
    assert contracts.slice_size(":800") == (800.0, pytest.approx(math.nan, nan_ok=True))
    examples, fraction = contracts.slice_size(" :80% ")
    assert math.isnan(examples) and fraction == pytest.approx(0.8, rel=1e-15)  # 80 / 100 in float64
    assert all(math.isnan(v) for v in contracts.slice_size(None) + contracts.slice_size("train"))
    assert contracts.finetune_protocol(3, 120) == "finetune:3ep-120ex"


def test_protocol_names_parse_one_several_or_all():
    assert contracts.protocol_names("vtab1k", []) == ["vtab1k"]
    assert contracts.protocol_names(" a, b,a", []) == ["a", "b"]
    assert contracts.protocol_names(["b", "a"], []) == ["b", "a"]
    assert contracts.protocol_names("all", ["z", "a"]) == ["a", "z"]
    with pytest.raises(UserError, match="no jobs stored"):
        contracts.protocol_names("all", [])
    with pytest.raises(UserError, match="must not be blank"):
        contracts.protocol_names("a,,b", ["a"])


def test_shared_rules_have_one_home():
    from recommender.evaluation import checks, factory, runner, strategies
    from recommender.models import adaptive, selection

    assert checks.MIN_MODELS is selection.MIN_MODELS is runner.MIN_MODELS is contracts.MIN_MODELS == 3
    assert factory.make_strategy("hybrid:imagenet:logme").budgets == (1, 2, 3, 5, 10)
    assert strategies.Adaptive().budgets == runner.evaluate.__defaults__[0] == (1, 2, 3, 5, 10)
    assert adaptive.make_adaptive("similarity").budgets == (1, 3, 5, 10)


def test_one_strategy_parser_for_making_and_for_the_scores_read():
    from recommender.evaluation.catalog import LEARNED, parse_strategy, scores_needed
    from recommender.evaluation.plots import family

    assert LEARNED == ("lr", "fm")
    # adaptive kinds and feature blocks are not scores (adaptive:similarity used to ask the store for one)
    assert scores_needed(["adaptive:similarity", "lr+p", "lr+d", "oracle"]) == []
    assert scores_needed(["learned-hybrid:fm+hscore:logme", "auto:stack+lfc+logme", "score:parc",
                          "hybrid:size:knn"]) == ["logme", "hscore", "lfc", "parc", "knn"]
    assert parse_strategy("auto:lr+logme").inner == parse_strategy("lr+logme")
    assert [family(s) for s in ("lr+logme", "learned-hybrid:lr:logme", "imagenet", "stack+logme", "nope")] == [
        "learned", "hybrid", "agnostic", "other", "other"]
    with pytest.raises(UserError, match="unknown strategy 'stack'"):
        scores_needed(["stack"])


def test_a_repeated_score_in_a_scores_file_is_its_last_value_never_a_mean():
    """As the store keeps the latest stored score: (1, 3) gives 3, not the mean 2."""
    from recommender.models.pairs import wide_scores

    long = pd.DataFrame({"model": ["a", "b", "a"], "score": ["logme"] * 3, "value": ["1.0", "5.0", "3.0"]})
    assert wide_scores(long).set_index("model")["score_logme"].to_dict() == {"a": 3.0, "b": 5.0}
    wide = pd.DataFrame({"model": ["a", "a", "b"], "score_logme": [1.0, 3.0, 5.0], "score_lfc": [0.5, 0.25, 1.0]})
    out = wide_scores(wide).set_index("model")
    assert out.to_dict() == {"score_logme": {"a": 3.0, "b": 5.0}, "score_lfc": {"a": 0.25, "b": 1.0}}


# --- one home: the import graph and the literals ------------------------------------------------------------------

PACKAGE = Path(contracts.__file__).parent


def _module(path: Path) -> str:
    """The dotted name of a package source file."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Each package module and the package modules it imports at run time (function-level imports included,
    `if TYPE_CHECKING:` blocks left out), read from the source with ast."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for b in node.body for n in ast.walk(b)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph, as the modules along it, or [] (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return []


def test_the_import_graph_has_no_circle_and_the_product_never_imports_evaluation():
    graph = _import_graph()
    assert "recommender.evaluation.catalog" in graph and graph["recommender.evaluation.splits"]
    assert _cycle(graph) == []
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]  # the search finds one
    product = ("recommender.models", "recommender.history", "recommender.scores", "recommender.zoo")
    wrong = sorted((m, t) for m, deps in graph.items() for t in deps
                   if m.startswith(product) and t.startswith("recommender.evaluation"))
    assert wrong == []
    # the catalog the CLI reads at start-up is a leaf of the evaluation package: names only
    assert not {t for t in graph["recommender.evaluation.catalog"] if t.startswith("recommender.evaluation")}


LITERALS = {  # what only contracts.py may write out, and what to use instead
    "the default protocol's name (DEFAULT_PROTOCOL)": re.compile(r"""["']vtab1k["']"""),
    "the score column prefix (score_column, score_name, is_score_column)": re.compile(r"""["']score_["'{]"""),
}


def test_no_shared_literal_is_written_outside_contracts():
    found = [f"{path.relative_to(PACKAGE.parent)}:{i}: {what}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "contracts.py"
             for i, line in enumerate(path.read_text().splitlines(), 1)
             for what, pattern in LITERALS.items() if pattern.search(line)]
    assert found == []
    assert LITERALS["the score column prefix (score_column, score_name, is_score_column)"].search(
        'f"score_{name}"')  # the scan would see one


def test_one_dataset_row_and_one_protocol_examples_rule():
    from recommender.models import recommend
    from recommender.zoo import scoring

    row = contracts.dataset_row("d", classes=10.0, group=None)
    assert list(row) == ["dataset", *contracts.DATASET_FACTS] and row["classes"] == 10.0
    assert math.isnan(row["examples"]) and math.isnan(row["group"])
    with pytest.raises(TypeError, match="not dataset facts: colour"):
        contracts.dataset_row("d", colour="red")
    assert not hasattr(recommend, "dataset_row") and scoring.dataset_row is contracts.dataset_row  # one definition
    per_dataset = pd.Series([500.0, math.nan, math.nan, math.nan])
    full = pd.Series([1000.0, 1000.0, 999.0, 50.0])
    counts, examples = contracts.protocol_examples(per_dataset, pd.Series([math.nan, 800.0, math.nan, math.nan]),
                                                   pd.Series([0.5, 0.5, 0.5, math.nan]), full)
    assert counts.tolist()[:3] == [500.0, 800.0, 499.0] and math.isnan(counts[3])  # floor(999 x 0.5) = 499
    assert examples.tolist() == [500.0, 800.0, 499.0, 50.0]
