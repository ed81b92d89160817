"""Consistency distillation on tiny data: the loss falls, the student keeps the teacher's interface, its
few-step output is deterministic and frame-anchored, runs resume, mistakes are clear errors."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import diffusion.sampling as sampling
from diffusion.checkpoint import load_checkpoint, load_denoiser, model_sampler, save_model
from diffusion.classifier import ClassifierConfig, train_classifier
from diffusion.config import load_config
from diffusion.distill import DistillConfig, consistency_loss, distill, load_teacher, pair_weights, sigma_pairs
from diffusion.distill_report import add_report_arguments, cli_distill_report, default_rows, distill_report
from diffusion.errors import StylehostError
from diffusion.model import Denoiser, ModelConfig
from diffusion.pairs import fixed_windows, load_clips
from diffusion.sampling import sample_consistency, transfer
from diffusion.schedule import consistency_sigmas, strength_sigma
from diffusion.stream import StreamConfig, stream_logmel
from diffusion.train import TrainConfig, train
from stylehost.cli import main
from tests.diffusion.synthdata import make_dataset

TEACHER = ["model.channels=[8,16]", "model.emb_dim=16", "model.fourier_dim=8", "batch_size=8", "workers=0",
           "threads=1", "val_windows=16", "val_steps=1"]
TINY = ["batch_size=8", "workers=0", "threads=1", "val_windows=16", "val_teacher_steps=2", "warmup=2"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)  # the machine's cores belong to longer jobs; tiny models gain nothing from more


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth"), clips=5, seconds=0.6)


@pytest.fixture(scope="module")
def teacher(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny teacher trained for 40 steps: enough structure that its ODE is not trivially consistent."""
    run = tmp_path_factory.mktemp("teacher")
    train(load_config(TrainConfig, None, [*TEACHER, "steps=40", "lr=3e-3", "warmup=5"]), data, run, progress=False)
    return run / "model.pt"


@pytest.fixture(scope="module")
def student(data: Path, teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("student")
    distill(tiny("steps=30", "lr=1e-3", "target_decay=0"), teacher, data, run, progress=False)
    return run / "model.pt"


def tiny(*extra: str) -> DistillConfig:
    return load_config(DistillConfig, None, [*TINY, *extra])


def test_sigma_pairs_are_adjacent_on_the_ramp_and_cover_it() -> None:
    cfg, mc = tiny("ode_points=18"), ModelConfig()
    hi, lo = sigma_pairs(4000, cfg, mc, torch.Generator().manual_seed(0))
    assert torch.all(hi > lo) and hi.max() <= mc.sigma_max * 1.0001 and lo.min() >= mc.sigma_min * 0.9999
    step = (hi ** (1 / mc.rho) - lo ** (1 / mc.rho)) / (mc.sigma_max ** (1 / mc.rho) - mc.sigma_min ** (1 / mc.rho))
    torch.testing.assert_close(step, torch.full_like(step, 1 / 17), atol=1e-4, rtol=0)
    assert hi.max() > 30 and lo.min() < 0.03  # both ends of the ramp are trained
    lam = pair_weights(hi, lo, cfg, mc)
    assert abs(float(lam.mean()) - 1) < 0.1 and lam[hi.argmin()] > 100 * lam[hi.argmax()]  # low sigmas count
    assert torch.all(pair_weights(hi, lo, tiny("weighting=uniform"), mc) == 1)


def test_a_few_steps_make_the_consistency_loss_fall(data: Path, teacher: Path, student: Path) -> None:
    """The self-consistency gap along the teacher's ODE, on fixed val windows with fixed noise."""
    t = load_teacher(teacher)
    cfg = tiny()
    val = fixed_windows(load_clips(data, t.cfg, "val"), t.cfg, 16)

    def gap(model: Denoiser) -> float:
        with torch.no_grad():
            return float(consistency_loss(model, model, model, t, val, cfg, torch.Generator().manual_seed(0)))

    before, after = gap(t), gap(load_denoiser(student))
    assert after < 0.8 * before, (before, after)
    history = load_checkpoint(student.parent / "checkpoint.pt")["history"]
    assert history["val"] and {"val_loss", "val_model_db", "val_teacher_db"} <= set(history["val"][-1])
    assert {p.name for p in student.parent.iterdir()} >= {"checkpoint.pt", "model.pt", "config.json", "loss.png"}


def test_student_keeps_the_teachers_interface_and_names_its_sampler(teacher: Path, student: Path) -> None:
    t, s = load_teacher(teacher), load_denoiser(student)
    assert type(s) is type(t) and s.cfg == t.cfg
    assert model_sampler(student) == "consistency" and model_sampler(teacher) == "euler"
    meta = load_checkpoint(student)["meta"]
    assert "Song et al. 2023" in meta["method"] and meta["teacher"]["sha256"]
    assert meta["provenance"]["seed"] == 0 and meta["provenance"]["sessions"][0]["command"]  # how it was made
    assert not torch.equal(s.net.out.weight, t.net.out.weight)  # it was trained, from the teacher's weights


def test_consistency_schedule_and_sampler() -> None:
    assert consistency_sigmas(1, 1.0, 0.02, 40.0).tolist() == [pytest.approx(40.0), 0.0]
    two = consistency_sigmas(2, 1.0, 0.02, 40.0)
    assert two[1] == pytest.approx(strength_sigma(0.5, 0.02, 40.0), rel=1e-5) and two[2] == 0
    assert consistency_sigmas(4, 0.5, 0.02, 40.0)[0] == pytest.approx(strength_sigma(0.5, 0.02, 40.0), rel=1e-5)
    # A denoiser that always says "x0 = 1": each step re-noises 1 by sigma * noise, the last returns 1.
    one = lambda x, sigma: torch.ones_like(x)  # noqa: E731
    seen = []
    out = sample_consistency(one, torch.zeros(1, 1, 2, 2), torch.tensor([4.0, 2.0, 0.0]),
                             noise_sampler=lambda i: torch.full((1, 1, 2, 2), float(i)),
                             callback=lambda info: seen.append(info["x"]))
    assert torch.all(out == 1) and torch.all(seen[1] == 1 + 2.0 * 1)
    with pytest.raises(StylehostError, match="noise_sampler"):
        sample_consistency(one, torch.zeros(1, 1, 2, 2), torch.tensor([4.0, 2.0, 0.0]))


@pytest.mark.parametrize("steps", [1, 2])
def test_student_output_is_deterministic_and_frame_anchored(student: Path, steps: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Two windows 4 frames apart: their denoiser inputs agree on the 28 shared frames before the first
    call, every re-noising draws identical noise there, two runs are bit-identical, another seed differs."""
    s = load_denoiser(student)
    src = torch.randn(1, 64, 36) * 2 - 6
    style = s.style_vector({"cello": 1.0})
    kw = {"strength": 1.0, "steps": steps, "sampler": "consistency", "seed": 3}
    starts: list[torch.Tensor] = []
    noise: list[dict[int, np.ndarray]] = []
    real_noise, real_sampler = sampling.batch_frame_noise, sampling.SAMPLERS["consistency"]

    def spy_noise(*args, **kwargs):
        noise[-1][kwargs["step"]] = real_noise(*args, **kwargs)
        return noise[-1][kwargs["step"]]

    def grab(info: dict) -> None:
        if info["i"] == 0:
            starts.append(info["x"])

    monkeypatch.setattr(sampling, "batch_frame_noise", spy_noise)
    monkeypatch.setitem(sampling.SAMPLERS, "consistency", lambda *a, **k: real_sampler(*a, **k, callback=grab))
    outs = []
    for offset in (0, 4):
        noise.append({})
        outs.append(transfer(s, src[:, :, offset : offset + 32], style, start_frames=100 + offset, **kw))
    torch.testing.assert_close(starts[0][..., 4:], starts[1][..., :28], rtol=0, atol=1e-6)
    assert sorted(noise[0]) == sorted(noise[1]) == list(range(steps))  # start noise + one per re-noising
    for step in noise[0]:
        np.testing.assert_array_equal(noise[0][step][..., 4:], noise[1][step][..., :28])
    monkeypatch.undo()
    again = transfer(s, src[:, :, :32], style, start_frames=100, **kw)
    torch.testing.assert_close(again, outs[0], rtol=0, atol=0)
    assert not torch.allclose(again, transfer(s, src[:, :, :32], style, start_frames=100, **{**kw, "seed": 4}))


def test_student_streams_deterministically(student: Path) -> None:
    s = load_denoiser(student)
    src = torch.tensor(np.random.default_rng(1).normal(-6, 2, (64, 45)), dtype=torch.float32)
    style = s.style_vector({"flute": 1.0})
    cfg = StreamConfig(steps=2, sampler="consistency", seed=5)
    a = stream_logmel(s, src, style, cfg)
    torch.testing.assert_close(a, stream_logmel(s, src, style, StreamConfig(**{**cfg.__dict__, "batch": 3})),
                               atol=1e-5, rtol=0)
    assert a.shape == src.shape and torch.isfinite(a).all()


def test_resume_continues_from_the_checkpoint(data: Path, teacher: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    distill(tiny("steps=3", "checkpoint_every=100", "val_every=100"), teacher, data, run, progress=False)
    first = load_checkpoint(run / "checkpoint.pt")
    assert first["step"] == 3
    distill(tiny("steps=5", "checkpoint_every=100", "val_every=100"), teacher, data, run, progress=False)
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 5 and ckpt["history"]["train"][-1][0] == 5 and len(ckpt["history"]["val"]) == 2
    assert json.loads((run / "config.json").read_text())["teacher"]["sha256"] == ckpt["teacher"]["sha256"]
    assert not torch.equal(first["target"]["net.out.weight"], ckpt["target"]["net.out.weight"])


def test_clear_errors(data: Path, teacher: Path, student: Path, tmp_path: Path) -> None:
    with pytest.raises(StylehostError, match="no teacher at .*stylehost train"):
        distill(tiny(), tmp_path / "missing.pt", data, tmp_path / "run", progress=False)
    with pytest.raises(StylehostError, match="is a distilled student"):
        distill(tiny(), student, data, tmp_path / "run", progress=False)
    other = tmp_path / "other"  # a teacher of another architecture, then the same out folder
    train(load_config(TrainConfig, None, [*TEACHER, "steps=1", "model.channels=[8,8]"]), data, other, progress=False)
    with pytest.raises(StylehostError, match="another model config: model.channels|channels"):
        distill(tiny("steps=1"), other / "model.pt", data, student.parent, progress=False)
    same_shape = tmp_path / "same"  # same config, other weights: refused by hash
    train(load_config(TrainConfig, None, [*TEACHER, "steps=1"]), data, same_shape, progress=False)
    with pytest.raises(StylehostError, match="another teacher"):
        distill(tiny("steps=1"), same_shape / "model.pt", data, student.parent, progress=False)
    with pytest.raises(StylehostError, match="no dataset at"):
        distill(tiny(), teacher, tmp_path / "nowhere", tmp_path / "run", progress=False)
    with pytest.raises(StylehostError, match="unknown config key 'model.channels'"):
        tiny("model.channels=[8]")
    with pytest.raises(StylehostError, match="ode_points"):
        tiny("ode_points=1")
    with pytest.raises(StylehostError, match="weighting must be one of ict, uniform"):
        tiny("weighting=lpips")


def test_cli_distill_end_to_end(data: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]
    sets = [a for s in [*TINY, "steps=2"] for a in ("--set", s)]
    assert main([*args, *sets]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert main([*args, "--set", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(tmp_path / "no.pt"), "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "no teacher at" in capsys.readouterr().err


def test_report_rows_count_denoiser_calls() -> None:
    rows = {r.name: r for r in default_rows(8, (1, 2, 4), "consistency")}
    assert rows["teacher Heun 8"].calls == 15 and rows["teacher DDIM 2"].calls == 2 and rows["student 4"].calls == 4
    assert rows["teacher DDIM 2"].sampler == "euler" and rows["student 1"].sampler == "consistency"


def test_distill_report_end_to_end(teacher: Path, student: Path, tmp_path: Path) -> None:
    """The one command: quality columns from eval, ms/window from ONNX Runtime, JSON + Markdown + manifest."""
    two = make_dataset(tmp_path / "two", clips=3, seconds=0.6, styles=("piano", "organ"))
    classifier = tmp_path / "clf.pt"
    train_classifier(two, classifier, ClassifierConfig(steps=5, window_frames=32, batch=8), progress=False)
    manifest = tmp_path / "models" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"name": "keep me"}))
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    out = tmp_path / "report"
    args = parser.parse_args(["--teacher", str(teacher), "--student", str(student), "--data", str(two),
                              "--classifier", str(classifier), "--teacher-steps", "2", "--clips-per-pair", "1",
                              "--repeats", "3", "--out", str(out), "--manifest", str(manifest)])
    assert cli_distill_report(args) == 0
    report = json.loads((out / "report.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["source (unchanged)", "static EQ (oracle)", "teacher Heun 2", "teacher DDIM 1", "teacher DDIM 2",
                     "teacher DDIM 4", "student 1", "student 2", "student 4"]
    for row in report["rows"][2:]:
        assert row["median_ms"] > 0 and row["p99_ms"] >= row["median_ms"]
        assert all(np.isfinite(row[m]) for m in ("log_mel_db", "chroma", "style_acc", "frechet"))
    assert report["criteria"]["passed"] in (True, False)
    assert "| student 2 | 2 |" in (out / "report.md").read_text()
    merged = json.loads(manifest.read_text())
    assert merged["name"] == "keep me" and merged["distillation"]["rows"] == report["rows"]
    other = tmp_path / "other.pt"
    save_model(other, Denoiser(ModelConfig(channels=(8, 8), emb_dim=16, fourier_dim=8)), {"kind": "student"})
    with pytest.raises(StylehostError, match="different model configs"):
        distill_report(teacher, other, two, classifier)


def test_distill_bar_judges_clearly_better_on_frechet() -> None:
    """Issue 4's bar: within 10% of the teacher on both distances, Frechet clearly (>= 10%) below DDIM 2;
    DDIM's blurry average may keep the lower log-mel distance (reported, not required)."""
    from diffusion.distill_report import criteria

    def report(student_lm: float, student_fd: float) -> dict:
        rows = [{"name": "teacher Heun 8", "log_mel_db": 6.9, "frechet": 1.44},
                {"name": "teacher DDIM 2", "log_mel_db": 5.7, "frechet": 2.28},
                {"name": "student 2", "log_mel_db": student_lm, "frechet": student_fd}]
        return {"rows": rows}

    ok = criteria(report(6.6, 1.35), 8)
    assert ok["passed"] and not ok["log_mel_db_beats_ddim2"] and ok["frechet_vs_ddim2"] < -0.1
    assert not criteria(report(7.7, 1.35), 8)["passed"]  # 11.6% worse than the teacher on log-mel
    assert not criteria(report(6.6, 1.60), 8)["passed"]  # 11% worse than the teacher on Frechet
    assert not criteria({"rows": [{"name": "teacher Heun 8", "log_mel_db": 6.9, "frechet": 2.2},
                                  {"name": "teacher DDIM 2", "log_mel_db": 5.7, "frechet": 2.28},
                                  {"name": "student 2", "log_mel_db": 6.6, "frechet": 2.1}]}, 8)["passed"]
    # (the last: within 10% of a teacher at 2.2, but only 8% below DDIM 2: not clearly better)


def test_a_student_can_learn_to_emit_nearer_the_windows_end(data: Path, teacher: Path, tmp_path: Path) -> None:
    """Issue 17: ``lookahead=0`` moves the emphasised emitted frames to the window's newest ones and the model
    file says so, so a low-delay bundle plays what the student was trained to emit; more than the teacher's
    look-ahead is refused."""
    import dataclasses

    run = tmp_path / "la0"
    distill(tiny("steps=2", "lookahead=0", "val_every=100", "checkpoint_every=100"), teacher, data, run,
            progress=False)
    s, t = load_denoiser(run / "model.pt"), load_denoiser(teacher)
    assert t.cfg.lookahead > 0 and s.cfg == dataclasses.replace(t.cfg, lookahead=0)
    w = s.cfg.frame_weights(4.0)
    assert (w[-s.cfg.emit :] == 4.0).all() and (w[: -s.cfg.emit] == 1.0).all()
    with pytest.raises(StylehostError, match="lookahead must be in"):
        distill(tiny("steps=1", f"lookahead={t.cfg.lookahead + 1}"), teacher, data, tmp_path / "bad", progress=False)
