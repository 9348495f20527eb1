"""A tiny, dependency-free training script: logistic regression on generated data.

Logs `accuracy` per epoch with MLflow when it is installed (mljob's runner provides it), else prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random


def log_metric(name: str, value: float, step: int) -> None:
    try:
        import mlflow  # type: ignore[import-not-found]
    except ImportError:
        print(f"{name}={value:.4f} step={step}", flush=True)
        return
    mlflow.log_metric(name, value, step=step)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--model-dir", default="outputs")
    args = parser.parse_args()

    rng = random.Random(0)
    points = [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(400)]
    labels = [1 if x + 0.5 * y > 0 else 0 for x, y in points]
    w = [0.0, 0.0, 0.0]
    for epoch in range(args.epochs):
        for (x, y), label in zip(points, labels, strict=True):
            p = 1 / (1 + math.exp(-(w[0] + w[1] * x + w[2] * y)))
            for i, feature in enumerate((1.0, x, y)):
                w[i] += args.learning_rate * (label - p) * feature
        correct = sum(
            (w[0] + w[1] * x + w[2] * y > 0) == bool(label) for (x, y), label in zip(points, labels, strict=True)
        )
        log_metric("accuracy", correct / len(points), epoch)
    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "model.json"), "w", encoding="utf-8") as handle:
        json.dump({"weights": w}, handle)
    print(f"model written to {args.model_dir}", flush=True)


if __name__ == "__main__":
    main()
