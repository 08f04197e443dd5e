"""`recommender models fetch NAME...`: download Hugging Face and timm models into the Hugging Face cache (HF_HOME)
ahead of time, for runs on machines without network (`rank --offline`, HF_HUB_OFFLINE=1).

Only argparse-level names are imported here; huggingface_hub loads when the command runs."""

from __future__ import annotations

import argparse

FETCH_DESCRIPTION = """\
Download models into the Hugging Face cache ($HF_HOME/hub, else ~/.cache/huggingface/hub):
each model's configs, tokenizer or image processor, and one kind of weights (safetensors
where the model has them). Names as `rank --models` takes them: Hugging Face ids (with or
without an owner), timm/NAME or timm:NAME, or the bare timm names of the bundled history.
Later runs read them with --offline or HF_HUB_OFFLINE=1, without network.

example:
  recommender models fetch google/vit-base-patch16-224 bert-base-uncased timm/resnet50.a1_in1k
  HF_HUB_OFFLINE=1 recommender rank --data digits --models google/vit-base-patch16-224"""


def hub_repo(name: str) -> str:
    """The hub repository of a model name: timm models live under timm/ (timm:NAME and the timm history's bare
    names included); anything else is a Hugging Face id."""
    from recommender.zoo.catalog import TIMM, history_model
    from recommender.zoo.timm_models import timm_name

    known = history_model(name)
    plain = timm_name(name)
    if known is not None and known.source == TIMM or plain is not None:
        return f"timm/{plain or name}"
    return name


def run_fetch(args: argparse.Namespace) -> int:
    """Download each model and print the folder it is in."""
    from recommender.errors import UserError
    from recommender.zoo.hub import download, has_weights

    for name in args.names:
        folder = download(hub_repo(name))
        if not has_weights(folder):
            raise UserError(f"model {name}: the hub holds no weights file for it (.safetensors or PyTorch .bin)")
        print(f"{name}: {folder}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `models fetch` to the CLI."""
    parser = subparsers.add_parser("models", help="models of the hub: fetch them into the local cache ahead of time",
                                   description="Models of the Hugging Face hub and timm, kept in the local cache.\n\n"
                                               "example:\n  recommender models fetch bert-base-uncased",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    fetch = sub.add_parser("fetch", help="download models into the Hugging Face cache (HF_HOME) for offline runs",
                           description=FETCH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("names", nargs="+", metavar="NAME", help="Hugging Face id, timm/NAME or timm name")
    fetch.set_defaults(func=run_fetch)
