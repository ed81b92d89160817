"""`stylehost bench quality`: the project's quality tables on the test split, as JSON and Markdown.

Nothing is scored here: the tables come from ``diffusion.eval.evaluate`` (baselines + models, streamed
as the engine runs them) and, when a distilled student exists, ``diffusion.distill_report`` (teacher
Heun / DDIM / student rows with ONNX ms per window). This module picks what exists, runs the right one
and writes ``quality.json`` / ``quality.md`` where ``stylehost bench report`` finds them. The
reconstruction-stage comparison (issue 8) has its own command; its report is copied in when present.

Rows are normalised to ``{name, model, sampler, steps, log_mel_db, chroma, style_acc, frechet}`` (+
``median_ms``/``p99_ms`` from the distill report) so the report can plot quality against steps.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from benchmarks.latency import parse_list, write_json
from diffusion.errors import StylehostError

RESULTS = Path("benchmarks/results")
# Where training and distillation leave their models; on a clean clone, the shipped bundles' weights
# (the teacher's bundle, and the default bundle, which is the distilled student).
TEACHER_CANDIDATES = (Path("runs/teacher/model.pt"), Path("models/teacher/model.pt"))
STUDENT_CANDIDATES = (Path("runs/student/model.pt"), Path("models/default/model.pt"))
DEFAULT_RECONSTRUCTION = Path("runs/reconstruction/report.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", type=Path, default=None,
                   help="the model file to score (default: the first of "
                        f"{', '.join(str(c) for c in TEACHER_CANDIDATES)} that exists)")
    p.add_argument("--student", type=Path, default=None,
                   help="distilled student's model file; scored (with the distill report) when it exists "
                        f"(default: the first of {', '.join(str(c) for c in STUDENT_CANDIDATES)} that exists)")
    p.add_argument("--data", type=Path, default=Path("data/paired"), help="rendered dataset folder")
    p.add_argument("--classifier", type=Path, default=Path("models/style_classifier.pt"),
                   help="style classifier (trained first when missing, as `stylehost eval` does)")
    p.add_argument("--steps", default="1,2,4", help="few-step sampler steps to score")
    p.add_argument("--teacher-steps", type=int, default=8, help="Heun steps of the teacher reference row "
                                                                "(distill report only)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--emit", type=int, default=4, help="frames emitted per window (the engine's stride)")
    p.add_argument("--clips-per-pair", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=200, help="timed ONNX repeats per row (distill report)")
    p.add_argument("--reconstruction", type=Path, default=DEFAULT_RECONSTRUCTION,
                   help="the reconstruction-stage comparison's JSON (issue 8), copied in when it exists")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for quality.json / quality.md")


def cli_quality(args: argparse.Namespace) -> int:
    from benchmarks.machine import machine_info

    if args.teacher is None:
        args.teacher = next((c for c in TEACHER_CANDIDATES if c.is_file()), TEACHER_CANDIDATES[0])
    if not Path(args.teacher).is_file():
        raise StylehostError(f"no model at {args.teacher}: train one (`stylehost train`, docs/teacher.md) "
                             "or pass --teacher")
    if not args.classifier.exists():
        from diffusion.classifier import train_classifier

        info = train_classifier(args.data, args.classifier)
        print(f"style classifier: val accuracy {info['val_accuracy']:.3f} -> {args.classifier}")
    steps = tuple(parse_list(args.steps, int, "steps"))
    if args.student is None:
        args.student = next((c for c in STUDENT_CANDIDATES if c.is_file()), None)
    student = Path(args.student) if args.student and Path(args.student).is_file() else None
    result = run_quality(args.teacher, student, args.data, args.classifier, steps=steps,
                         teacher_steps=args.teacher_steps, strength=args.strength, emit=args.emit,
                         clips_per_pair=args.clips_per_pair, seed=args.seed, repeats=args.repeats)
    result["machine"] = machine_info()
    result["reconstruction"] = copy_reconstruction(args.reconstruction, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "quality.json", result)
    (args.out / "quality.md").write_text(result["markdown"])
    print(result["markdown"])
    print(f"wrote {args.out / 'quality.json'} and {args.out / 'quality.md'}")
    return 0


def run_quality(
    teacher: Path, student: Path | None, data: Path, classifier: Path, *, steps: tuple[int, ...] = (1, 2, 4),
    teacher_steps: int = 8, strength: float = 1.0, emit: int = 4, clips_per_pair: int = 3, seed: int = 0,
    repeats: int = 200, progress: bool = True,
) -> dict[str, Any]:
    """The distill report when a student exists (it already holds the teacher and the baselines), else
    eval of the teacher at each of ``steps``; JSON-able with normalised ``rows`` and the ``markdown``."""
    from diffusion.eval import EvalConfig
    from diffusion.stream import StreamConfig

    eval_cfg = EvalConfig(clips_per_pair=clips_per_pair, seed=seed)
    if student is not None:
        from diffusion.distill_report import distill_report, markdown

        report = distill_report(teacher, student, data, classifier, teacher_steps=teacher_steps, few_steps=steps,
                                stream=StreamConfig(emit=emit, strength=strength, seed=seed), eval_cfg=eval_cfg,
                                repeats=repeats, progress=progress)
        rows = [{"model": "baseline", **r} if "model" not in r else r for r in report["rows"]]
        return {"source": "distill_report", "teacher": str(teacher), "student": str(student), "rows": rows,
                "split": eval_cfg.split, "distill": report, "eval": None, "markdown": markdown(report)}
    from diffusion.checkpoint import load_denoiser, model_sampler
    from diffusion.eval import evaluate, markdown_table

    denoiser = load_denoiser(teacher).eval()
    sampler = model_sampler(teacher)
    role = "teacher" if sampler in ("euler", "heun") else "student"  # a shipped bundle may hold a student
    systems = {f"{role} {k}-step": (denoiser, StreamConfig(emit=emit, steps=k, strength=strength, sampler=sampler,
                                                            seed=seed)) for k in steps}
    report = evaluate(systems, data, classifier, eval_cfg, progress=progress)
    report["stream"] = {name: {"emit": c.emit, "steps": c.steps, "strength": c.strength, "sampler": c.sampler}
                        for name, (_, c) in systems.items()}
    rows = []
    for name, scores in report["overall"].items():
        stream = report["stream"].get(name)
        rows.append({"name": name, "model": role if stream else "baseline",
                     **({"sampler": stream["sampler"], "steps": stream["steps"]} if stream else {}), **scores})
    return {"source": "eval", "teacher": str(teacher), "student": None, "rows": rows, "split": eval_cfg.split,
            "distill": None, "eval": report, "markdown": markdown_table(report)}


def copy_reconstruction(path: Path | None, out: Path) -> str | None:
    """Copy the reconstruction comparison (and its .md beside it) into ``out``; the copied JSON's path or None."""
    if path is None or not Path(path).is_file():
        return None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out / "reconstruction.json")
    md = Path(path).with_suffix(".md")
    if md.is_file():
        shutil.copyfile(md, out / "reconstruction.md")
    return str(out / "reconstruction.json")
