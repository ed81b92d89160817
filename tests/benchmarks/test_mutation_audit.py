"""The mutation audit (benchmarks/mutation_audit.py, docs/reliability.md) cannot rot: every mutation's marker
(`# audit: NAME`) is still in its file exactly once, every marker has a mutation, every test it names exists.
Runs nothing; the audit itself is too slow for CI (`python -m benchmarks.mutation_audit`)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.mutation_audit import MUTATIONS, Edit, Mutation, apply, check


def test_every_mutation_still_applies_and_names_existing_tests() -> None:
    assert not check(), "\n".join(check())


def test_apply_patches_at_named_markers_and_refuses_an_ambiguous_one(tmp_path: Path) -> None:
    source = ("def f(x):\n"
              "    if x > 1:  # audit: guard\n"
              "        return 1\n"
              "    # audit: tail, tail-too\n"
              "    return g(x, strict=True)\n")
    (tmp_path / "f.py").write_text(source)

    def mutated(*edits: Edit) -> str:
        original = apply(Mutation("m", "", "", "f.py", edits, ()), tmp_path)
        text = (tmp_path / "f.py").read_text()
        (tmp_path / "f.py").write_text(original)
        assert original == source
        return text

    assert "    if False:  # MUTATION\n        return 1\n" in mutated(Edit("guard", "if False:  # MUTATION"))
    assert "g(x, strict=False)" in mutated(Edit("tail", "strict=False", old="strict=True"))  # the next line
    assert "    return 0\n    return g(" in mutated(Edit("tail-too", "return 0", insert="before"))
    dropped = mutated(Edit("guard", ""), Edit("tail", "pass\nreturn 2"))
    assert dropped == "def f(x):\n        return 1\n    # audit: tail, tail-too\n    pass\n    return 2\n"
    assert mutated(Edit("guard", "y = x\nif y:")).startswith("def f(x):\n    y = x\n    if y:\n        return 1\n")
    (tmp_path / "f.py").write_text(source + "    # audit: guard\n    pass\n")
    try:
        apply(Mutation("m", "", "", "f.py", (Edit("guard", "pass"),), ()), tmp_path)
    except SystemExit as exc:
        assert "2 times" in str(exc)
    else:
        raise AssertionError("an ambiguous marker must stop the audit")
    problems = check(tmp_path, (Mutation("m", "", "", "f.py", (Edit("gone", "pass"),), ()),))
    assert problems == ["m: f.py holds the marker `audit: gone` 0 times (want 1)"]


def test_every_protection_in_docs_has_a_mutation() -> None:
    """docs/reliability.md's audit table lists every mutation by name."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    missing = [m.name for m in MUTATIONS if f"`{m.name}`" not in doc]
    assert not missing, missing
