#!/usr/bin/env bash
# The offline benchmark of issue 15, end to end and resumable: the fine-tuning campaign over the shipped text and
# image zoos and datasets (every score on every pair, LP-FT jobs logged as each finishes), then the tables.
# Rerun to resume a stopped campaign: finished jobs are skipped. Sized for a 2-core CPU (see README).
# Usage: bash scripts/benchmark.sh [STORE_URL] [OUT]
set -euo pipefail
DB="${1:-sqlite:///runs/benchmark/history.db}"
OUT="${2:-experiments/results}"
mkdir -p runs/benchmark
# One torch thread per process: these jobs are small, and on 2 busy cores a second thread made them up to 10x slower
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
TEXT_MODELS=all-MiniLM-L6-v2,paraphrase-MiniLM-L3-v2,glove-6B-50d,spacy-en_core_web_sm,wordllama-l2-supercat-256
TEXT_MODELS="$TEXT_MODELS,chars2vec-en-300"
TEXT_DATA=tweets,bbc_news,austen,fine_foods,fortunes,wordnet_nouns,novels,fortune_languages,bing_sentiment
IMAGE_MODELS=efficientnet-lite0,efficientnet-lite1,efficientnet-lite2,mobilenet-v2,mtcnn-pnet,mtcnn-rnet,mtcnn-onet
IMAGE_DATA=digits,mnist5k,fashion,emoji,lfw_faces,textures
SEEDS="${SEEDS:-0,1,2,3}"
COMMON=(--n 200 --lrs 1e-4,1e-3 --seeds "$SEEDS" --epochs 3 --patience 3 --db "$DB")
recommender campaign --models "$TEXT_MODELS" --datasets "$TEXT_DATA" --max-length 64 "${COMMON[@]}"
recommender campaign --models "$IMAGE_MODELS" --datasets "$IMAGE_DATA" --image-size 64 "${COMMON[@]}"
python experiments/offline_benchmark.py --db "$DB" \
    --protocol finetune:lpft-3ep-120ex-tok64,finetune:lpft-3ep-120ex-px64 --out "$OUT"
