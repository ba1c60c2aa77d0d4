"""CUDA path check: train the same candidates on CPU and on the GPU through nas's own trainer.

Needs torch, transformers, tokenizers, pandas and scikit-learn only (no Hydra, no MLflow), so it
runs on a bare CUDA image. Prints one line per (device, architecture) and writes a JSON report.
    python bench/gpu_check.py [report.json]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.models import build_config, build_model, parameter_count  # noqa: E402
from nas.tasks import LanguageModelingTask, TextClassificationTask  # noqa: E402
from nas.train import TrainerConfig, train_and_evaluate  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"


def main(report_path: str) -> None:
    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}, "
          f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'}")
    tc = TextClassificationTask(str(DATA / "rotten_tomatoes/train.csv.gz"), str(DATA / "rotten_tomatoes/validation.csv.gz"),
                                "text", "label", 4000, 500, 48, "wordpiece", 2000, "accuracy")
    lm = LanguageModelingTask(str(DATA / "web_bible/train.csv.gz"), str(DATA / "web_bible/validation.csv.gz"),
                              "text", 4000, 300, 64, "byte_bpe", 2000)
    cases = [
        ("bert", tc, {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128}),
        ("bert", tc, {"num_hidden_layers": 3, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 256}),
        ("gpt2", lm, {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_inner": 128}),
    ]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for family, task, arch in cases:
        for device in devices:
            torch.manual_seed(0)
            cfg = build_config(family, arch, task.config_fields())
            model = build_model(cfg, task.name)
            start = time.perf_counter()
            result = train_and_evaluate(model, task, TrainerConfig(max_steps=100, batch_size=32, learning_rate=3e-3, device=device), data_seed=0)
            row = {"family": family, "task": task.name, "architecture": arch, "device": device,
                   "num_parameters": parameter_count(cfg, task.name), "metrics": result.metrics,
                   "train_seconds": round(result.train_seconds, 3), "eval_seconds": round(result.eval_seconds, 3),
                   "wall_seconds": round(time.perf_counter() - start, 3), "final_loss": result.losses[-1][1]}
            rows.append(row)
            print(json.dumps(row))
    Path(report_path).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_check.json")
