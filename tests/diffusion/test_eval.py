"""`evaluate` scores models and both baselines on real rendered test clips, streamed as the engine runs."""

from pathlib import Path

import numpy as np
import torch

from diffusion.classifier import ClassifierConfig, load_classifier, train_classifier
from diffusion.eval import EvalConfig, evaluate, markdown_table
from diffusion.model import Denoiser, ModelConfig
from diffusion.stream import StreamConfig
from tests.diffusion.test_guide import tiny_stage


def test_evaluate_reports_every_system_and_metric(small_dataset: Path, tmp_path: Path) -> None:
    clf_path = tmp_path / "clf.pt"
    info = train_classifier(small_dataset, clf_path, ClassifierConfig(steps=30, batch=16), progress=False)
    assert 0.0 <= info["val_accuracy"] <= 1.0 and load_classifier(clf_path)[1]["styles"] == info["styles"]
    torch.manual_seed(0)
    tiny = Denoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8)).eval()
    report = evaluate({"tiny": (tiny, StreamConfig(steps=1))}, small_dataset, clf_path,
                      EvalConfig(clips_per_pair=1), progress=False)
    assert set(report["overall"]) == {"source", "static_eq", "tiny"}
    assert report["pairs"] == 6  # 3 styles: every ordered pair with source != target
    for system in report["overall"].values():
        assert set(system) == {"log_mel_db", "harmonic_db", "chroma", "style_acc", "frechet"}
        assert all(np.isfinite(v) for v in system.values())
    # The oracle EQ is fitted to each pair, so it is never further from the target than the raw source.
    assert report["overall"]["static_eq"]["log_mel_db"] <= report["overall"]["source"]["log_mel_db"]
    table = markdown_table(report)
    assert "| static_eq |" in table and "vs static EQ" in table

    # With a GuideDiff stage the model's audio goes through it (as in the engine); the baselines do not.
    staged = evaluate({"tiny": (tiny, StreamConfig(steps=1))}, small_dataset, clf_path,
                      EvalConfig(clips_per_pair=1), progress=False, stage=tiny_stage())
    for name in ("source", "static_eq"):
        assert staged["overall"][name] == report["overall"][name]
    assert staged["overall"]["tiny"]["log_mel_db"] != report["overall"]["tiny"]["log_mel_db"]

    # A causal streaming model is scored as its streaming processor plays it (diffusion/causal_stream.py).
    from diffusion.causal import CausalDenoiser
    from diffusion.model import CausalConfig

    causal = CausalDenoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8, lookahead=1, emit=1,
                                        causal=CausalConfig(dilations=(1, 2)))).eval()
    both = evaluate({"tiny": (tiny, StreamConfig(steps=1, emit=2)), "causal": (causal, StreamConfig(steps=1, emit=2))},
                    small_dataset, clf_path, EvalConfig(clips_per_pair=1), progress=False, stage=tiny_stage())
    assert set(both["overall"]) == {"source", "static_eq", "tiny", "causal"}
    assert all(np.isfinite(v) for v in both["overall"]["causal"].values())
