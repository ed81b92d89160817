"""The mutation audit (benchmarks/mutation_audit.py, docs/reliability.md) cannot rot: every mutation's search
string is still in its file exactly once and every test it names exists. Runs nothing; the audit itself is
too slow for CI (`python -m benchmarks.mutation_audit`)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.mutation_audit import MUTATIONS, Mutation, apply, check


def test_every_mutation_still_applies_and_names_existing_tests() -> None:
    assert not check(), "\n".join(check())


def test_apply_patches_a_copy_and_refuses_an_ambiguous_search(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("a = 1\nb = 2\nb = 2\n")
    original = apply(Mutation("m", "", "", "f.py", (("a = 1", "a = 0"),), ()), tmp_path)
    assert original == "a = 1\nb = 2\nb = 2\n" and (tmp_path / "f.py").read_text().startswith("a = 0")
    try:
        apply(Mutation("m", "", "", "f.py", (("b = 2", "b = 0"),), ()), tmp_path)
    except SystemExit as exc:
        assert "2 times" in str(exc)
    else:
        raise AssertionError("an ambiguous search string must stop the audit")


def test_every_protection_in_docs_has_a_mutation() -> None:
    """docs/reliability.md's audit table lists every mutation by name."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    missing = [m.name for m in MUTATIONS if f"`{m.name}`" not in doc]
    assert not missing, missing
