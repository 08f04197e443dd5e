#!/usr/bin/env bash
# The offline benchmark of issue 15, end to end and resumable: the fine-tuning campaign over the shipped text and
# image zoos and datasets (every score on every pair, LP-FT jobs logged as each finishes), then the tables.
# Rerun to resume a stopped campaign: finished jobs are skipped. Sized for a 2-core CPU (see README).
# Usage: bash scripts/benchmark.sh [STORE_URL] [OUT]
set -euo pipefail
DB="${1:-sqlite:///runs/benchmark/history.db}"
OUT="${2:-experiments/results}"
mkdir -p runs/benchmark
export RECOMMENDER_EXECUTOR="${RECOMMENDER_EXECUTOR:-serial}"  # 2 cores: worker processes oversubscribe them
TEXT_MODELS=all-MiniLM-L6-v2,paraphrase-MiniLM-L3-v2,glove-6B-50d,spacy-en_core_web_sm,wordllama-l2-supercat-256
TEXT_DATA=tweets,bbc_news,austen,fine_foods,fortunes,wordnet_nouns,novels,fortune_languages,bing_sentiment
IMAGE_MODELS=efficientnet-lite0,efficientnet-lite1,efficientnet-lite2,mobilenet-v2
IMAGE_DATA=digits,mnist5k,fashion,emoji
COMMON=(--n 200 --lrs 1e-4,1e-3 --seeds 0,1 --epochs 3 --patience 3 --db "$DB")
recommender campaign --models "$TEXT_MODELS" --datasets "$TEXT_DATA" --max-length 64 "${COMMON[@]}"
recommender campaign --models "$IMAGE_MODELS" --datasets "$IMAGE_DATA" --image-size 64 "${COMMON[@]}"
python experiments/offline_benchmark.py --db "$DB" \
    --protocol finetune:lpft-3ep-120ex-tok64,finetune:lpft-3ep-120ex-px64 --out "$OUT"
