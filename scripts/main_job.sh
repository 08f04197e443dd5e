#!/usr/bin/env bash
# The main job on the bundled real data: build the history store, train the recommenders, evaluate them
# leave-one-dataset-out against the literature's search strategies, and rank the offline text zoo for a
# shipped dataset. Everything goes under runs/main/ (override with OUT=...); it takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/main}
DB="sqlite:///$OUT/history.db"
export HF_HUB_OFFLINE=1
# evaluate's fold x strategy tasks, its figures and rank's models run in worker processes, one per core (the
# executor's default; RECOMMENDER_EXECUTOR=serial keeps them in one process, with the same numbers)
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== 1. history store: load the bundled real fine-tuning histories"
recommender history --db "$DB" init
recommender history --db "$DB" stats > "$OUT/history-stats.txt"
sed -n "1,20p" "$OUT/history-stats.txt"

echo "== 2. train the FM recommender on SHiFT vision (VTAB-1k) and SHiFT text"
recommender train --db "$DB" --recommender fm --features d,m --protocol vtab1k --modality image --out "$OUT/fm-vision"
recommender train --db "$DB" --recommender fm --features d,m --protocol vtab1k --modality text --out "$OUT/fm-text"

echo "== 3. evaluate: leave-one-dataset-out on SHiFT vision, regret at budgets 1, 3, 5"
recommender evaluate --db "$DB" --split loo --protocol vtab1k --modality image --select test \
    --strategies oracle,random,imagenet,mean-perf,score:logme,hybrid:mean-perf:logme,lr,lr+logme,fm,auto \
    --budgets 1,3,5 --out "$OUT/evaluate-loo"
sed -n '1,60p' "$OUT/evaluate-loo/report.md"

echo "== 4. recommend models for a VTAB task (dtd), and rank the offline text zoo on BBC News"
recommender recommend --db "$DB" --model "$OUT/fm-vision" --dataset dtd --top-k 5
recommender rank --db "$DB" --data bbc_news --n 300 --zoo text-offline \
    --scores logme,hscore_reg,lfc,parc,knn,linear --recommender "$OUT/fm-text" --top-k 3 \
    --csv "$OUT/rank-bbc_news.csv" --cache "$OUT/features"

echo "== 5. next: two models already fine-tuned on your own task (TransferGraph's real results on Oxford pets,"
echo "   under its own protocol); which three auto would fine-tune next, from the bundled image history"
python - "$DB" > "$OUT/observed-pets.csv" <<'PY'
import sys
from recommender.history import open_store
pairs = open_store(sys.argv[1]).pair_table("transfergraph:70pct-30ep", select="test")
tried = pairs[(pairs["dataset"] == "oxford_iiit_pet")
              & pairs["model"].isin(["google/vit-base-patch16-224", "facebook/deit-small-patch16-224"])]
print(tried[["model", "performance"]].to_csv(index=False), end="")
PY
recommender next --db "$DB" --dataset my-pets --modality image --observed "$OUT/observed-pets.csv" --budget 3

echo "== done: report, CSVs and plots in $OUT/"
