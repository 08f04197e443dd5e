"""Benchmark of feature extraction through a Hugging Face image provider (recommender.zoo.hf) against its floor.

For a tiny (ViT-Ti/16: 192-d, 12 layers, 3 heads) and a base-size (ViT-B/16: 768-d, 12 layers, 12 heads) random
ViT at 224 px, on --n images of --size px (RGB noise with smooth structure, encoded as PNG), in one run:
1. decoding: PNG bytes to uint8 arrays (PIL), timed alone;
2. resizing: the model's image processor (resize, rescale, normalise) on the decoded arrays, timed alone;
3. extraction: `zoo.extract.extract` through the provider (no cache), i.e. processor + forward + pooling, with the
   processor's time (2) taken out, so that only what the provider adds to the network counts;
4. extraction from the input cache: `extract` with a feature cache whose input cache already holds the processed
   images (what a second model with the same preprocessing gets), the feature entry removed before each run;
5. the floor: a bare `model(pixel_values)` loop under inference_mode over the same processed batches.
Images per second for each; the ratios extraction / floor (target: within 1.2x on CPU). Medians of --repeats runs.
--workers sets the DataLoader workers of both extractions.

Run: python experiments/bench_extract.py [--device cpu|cuda] > experiments/results/bench_extract.md
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

SIZES = {"vit-tiny": {"hidden_size": 192, "num_attention_heads": 3, "intermediate_size": 768},
         "vit-base": {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}}


def images(n: int, size: int, seed: int = 0) -> list[bytes]:
    """n PNG-encoded RGB images: upsampled noise, so that PNG has structure to compress."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def decode(encoded: list[bytes]) -> np.ndarray:
    """PNG bytes to an n x H x W x 3 uint8 array, as the dataset loaders decode."""
    from recommender.zoo.datasets import decode_image

    return np.stack([decode_image(data, f"image {i}") for i, data in enumerate(encoded)])


def model_folder(kind: str, root: Path) -> Path:
    """A random ViT of the given size with its 224 px image processor, saved as transformers saves a model."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = root / kind
    torch.manual_seed(0)
    ViTModel(ViTConfig(num_hidden_layers=12, image_size=224, patch_size=16, **SIZES[kind])).save_pretrained(folder)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def median_seconds(run: Callable[[], object], repeats: int, device: str) -> float:
    """Median wall-clock seconds of `repeats` runs (the device synchronised before the clock stops)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(kind: str, root: Path, encoded: list[bytes], batch: int, repeats: int, device: str,
          workers: int) -> dict[str, float]:
    """Seconds of decoding, resizing, extraction (processor excluded), extraction from the input cache and the bare
    forward loop for one model."""
    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.datasets import Dataset
    from recommender.zoo.extract import extract
    from recommender.zoo.zoos import get_provider

    provider = get_provider(str(model_folder(kind, root)))
    pixels = decode(encoded)
    ds = Dataset("bench", "image", pixels, np.arange(len(pixels)) % 2, ("a", "b"))
    batches = [provider.prepare(pixels[i: i + batch])["pixel_values"] for i in range(0, len(pixels), batch)]
    net = provider.encoder().model.to(device).eval()  # the transformers model inside the pooling wrapper

    def floor() -> None:
        with torch.inference_mode():
            for x in batches:
                net(pixel_values=x.to(device))

    cache = FeatureCache(root / f"cache-{kind}")

    def from_input_cache() -> None:
        got = extract(provider, ds, cache=cache, progress=False, batch_size=batch, device=device, workers=workers)
        cache.path(got.key).unlink()  # the next run misses the features, not the prepared images
        cache.meta_path(got.key).unlink()

    extract(provider, ds, progress=False, batch_size=batch, device=device)  # warm-up (threads, allocator)
    from_input_cache()  # fills the input cache
    floor()
    seconds = {
        "decode": median_seconds(lambda: decode(encoded), repeats, device),
        "resize": median_seconds(lambda: [provider.prepare(pixels[i: i + batch]) for i in range(0, len(pixels), batch)],
                                 repeats, device),
        "extract_total": median_seconds(lambda: extract(provider, ds, progress=False, batch_size=batch, device=device,
                                                        workers=workers), repeats, device),
        "cached": median_seconds(from_input_cache, repeats, device),
        "floor": median_seconds(floor, repeats, device),
    }
    seconds["extract"] = seconds["extract_total"] - seconds["resize"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--n", type=int, default=64, help="images (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="side of the encoded images (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median (default: %(default)s)")
    parser.add_argument("--models", default="vit-tiny,vit-base", help="of vit-tiny, vit-base (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: %(default)s)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_extract: --device cuda, but torch sees no CUDA device")
    card = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    encoded = images(args.n, args.size)
    print(f"# Feature extraction against a bare forward loop ({datetime.now(timezone.utc):%Y-%m-%d})\n")
    print(f"device {args.device} ({card or platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; {args.n} PNG images of {args.size} px, batches of {args.batch_size}, median of {args.repeats}, "
          f"{args.workers} DataLoader workers\n")
    print("| model | decode img/s | resize img/s | extraction img/s (resize excluded) | from input cache img/s "
          "| floor img/s | extraction / floor | from input cache / floor |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for kind in args.models.split(","):
            s = bench(kind, Path(root), encoded, args.batch_size, args.repeats, args.device, args.workers)
            rate = {k: args.n / v for k, v in s.items()}
            print(f"| {kind} | {rate['decode']:.0f} | {rate['resize']:.0f} | {rate['extract']:.1f} | "
                  f"{rate['cached']:.1f} | {rate['floor']:.1f} | {s['extract'] / s['floor']:.2f}x | "
                  f"{s['cached'] / s['floor']:.2f}x |")


if __name__ == "__main__":
    main()
