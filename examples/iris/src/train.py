"""Iris, the lightgbm-iris example's shape without its dependencies: a nearest-centroid classifier in plain Python.

Reads the CSV given by --iris-csv, holds out every fifth row, logs `accuracy` (and `rows`) to the MLflow run that
mljob created for the job, writes the model to ./outputs/model.json and a line per class to ./logs/train.log.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import mlflow

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iris-csv", required=True)
    parser.add_argument("--note", default="", help="free text, echoed (shows how values reach the command)")
    args = parser.parse_args()
    if args.note:
        print(f"note: {args.note}")

    with open(args.iris_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    train = [r for i, r in enumerate(rows) if i % 5]
    test = [r for i, r in enumerate(rows) if not i % 5]

    centroids: dict[str, list[float]] = {}
    for species in sorted({r["species"] for r in train}):
        members = [r for r in train if r["species"] == species]
        centroids[species] = [sum(float(r[f]) for r in members) / len(members) for f in FEATURES]

    def predict(row: dict[str, str]) -> str:
        point = [float(row[f]) for f in FEATURES]
        return min(centroids, key=lambda s: math.dist(point, centroids[s]))

    accuracy = sum(predict(r) == r["species"] for r in test) / len(test)
    print(f"trained on {len(train)} rows, accuracy on {len(test)} held-out rows: {accuracy:.3f}")
    mlflow.log_metric("rows", len(rows))
    mlflow.log_metric("accuracy", accuracy)

    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/model.json").write_text(json.dumps({"features": FEATURES, "centroids": centroids}, indent=2))
    Path("logs").mkdir(exist_ok=True)
    with open("logs/train.log", "w") as log:
        for species, centre in centroids.items():
            log.write(f"{species}: {', '.join(f'{v:.2f}' for v in centre)}\n")


if __name__ == "__main__":
    main()
