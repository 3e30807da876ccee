"""The mutation-testing runner's bookkeeping (tests/mutation.py): names, scores, survivors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import mutation
from tests.mutation import GROUPS, Score, choose, module_of, score, survivors, unchecked

CODES: dict[str, int | None] = {
    "ghapplets.store.sql.x_insert__mutmut_1": 1,  # killed
    "ghapplets.store.sql.x_insert__mutmut_2": 0,  # survived
    "ghapplets.store.sql.x_insert__mutmut_3": 0,  # survived, but equivalent
    "ghapplets.store.sql.xǁStoreǁopen__mutmut_1": 33,  # no tests
    "ghapplets.store.sql.xǁStoreǁopen__mutmut_2": -24,  # timeout: the mutant hung a test
    "ghapplets.broker.base.x_f__mutmut_1": 3,  # killed (pytest internal error)
    "ghapplets.broker.base.x_f__mutmut_2": 37,  # caught by mypy: never tested
}
EQUIVALENT = {"ghapplets.store.sql.x_insert__mutmut_3": "a default every caller overrides"}


def test_a_mutant_belongs_to_its_module() -> None:
    assert module_of("ghapplets.store.sql.x_insert__mutmut_1") == "ghapplets.store.sql"
    assert module_of("ghapplets.store.sql.xǁStoreǁopen__mutmut_2") == "ghapplets.store.sql"


def test_scores_count_timeouts_and_mypy_as_catching_and_leave_equivalents_out() -> None:
    by_module = {s.module: s for s in score(CODES, EQUIVALENT)}
    assert by_module["ghapplets.store.sql"] == Score(
        "ghapplets.store.sql", total=5, killed=1, survived=1, no_tests=1, timeout=1, equivalent=1
    )
    assert by_module["ghapplets.store.sql"].ratio == pytest.approx(2 / 4)
    assert by_module["ghapplets.broker.base"] == Score(
        "ghapplets.broker.base", total=2, killed=1, typed=1
    )
    assert by_module["ghapplets.broker.base"].ratio == 1.0
    assert Score("m", total=4, typed=1, survived=3).ratio == pytest.approx(1 / 4)


def test_survivors_are_the_unkilled_mutants_not_listed_as_equivalent() -> None:
    assert survivors(CODES, EQUIVALENT) == [
        "ghapplets.store.sql.x_insert__mutmut_2",
        "ghapplets.store.sql.xǁStoreǁopen__mutmut_1",
    ]


def test_choose_hands_mutmut_the_survivors_or_the_patterns() -> None:
    def pick(survivors_only: bool, only: list[str] | None) -> list[str] | None:
        return choose(CODES, EQUIVALENT, survivors_only=survivors_only, only=only)

    assert pick(False, None) == []  # every mutant
    assert pick(False, ["ghapplets.broker.*"]) == ["ghapplets.broker.*"]
    assert pick(True, None) == survivors(CODES, EQUIVALENT)
    assert pick(True, ["*open*"]) == ["ghapplets.store.sql.xǁStoreǁopen__mutmut_1"]
    assert pick(True, ["ghapplets.broker.*"]) is None  # no survivor there: nothing to run


def test_each_group_mutates_and_runs_paths_that_exist() -> None:
    root = Path(mutation.__file__).resolve().parent.parent
    for name, group in GROUPS.items():
        for module in group.modules:
            assert list((root / "src").glob(module)), (name, module)
        for tests in group.tests:
            assert (root / "tests" / tests).exists(), (name, tests)


def test_the_equivalent_list_parses_and_gives_each_a_reason() -> None:
    for name, reason in mutation.equivalents().items():
        assert "__mutmut_" in name and reason.strip(), name


def test_writing_the_docs_keeps_the_rows_of_modules_not_measured_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "testing.md"
    old = [
        Score("ghapplets.store.sql", total=10, killed=5, survived=5, commit="aaaaaaa"),
        Score("ghapplets.broker.base", total=4, killed=4, commit="aaaaaaa"),
    ]
    docs.write_text(
        f"intro\n{mutation.DOCS_BEGIN}\n{mutation.table(old)}\n{mutation.DOCS_END}\nend\n"
    )
    monkeypatch.setattr(mutation, "DOCS", docs)
    new = Score("ghapplets.store.sql", total=10, killed=9, survived=1, commit="bbbbbbb+changes")
    mutation.write_docs([new], EQUIVALENT)
    text = docs.read_text()
    rows = mutation.recorded(text)
    assert rows == {"ghapplets.store.sql": new, "ghapplets.broker.base": old[1]}
    assert "13 of 14 mutants killed by the tests, 0 caught by mypy, 0 equivalent, score 93%" in text
    assert text.startswith("intro\n") and text.endswith("\nend\n")
    assert "- `ghapplets.store.sql.x_insert__mutmut_3`: a default every caller overrides" in text


def test_rows_written_before_mypy_took_part_are_read_and_rewritten_with_its_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "testing.md"
    old_row = "| `ghapplets.secrets.vault` | 194 | 182 | 11 | 1 | 0 | 94% | `f4bf6a4` |"
    docs.write_text(f"{mutation.DOCS_BEGIN}\n{old_row}\n{mutation.DOCS_END}\n")
    monkeypatch.setattr(mutation, "DOCS", docs)
    new = Score("ghapplets.store.sql", total=10, killed=6, typed=3, survived=1, commit="b")
    mutation.write_docs([new], {})
    text = docs.read_text()
    assert "| `ghapplets.secrets.vault` | 194 | 182 | 0 | 11 | 1 | 0 | 94% | `f4bf6a4` |" in text
    assert "| `ghapplets.store.sql` | 10 | 6 | 3 | 1 | 0 | 0 | 90% | `b` |" in text
    assert "188 of 204 mutants killed by the tests, 3 caught by mypy" in text
    assert mutation.recorded(text)["ghapplets.store.sql"] == new


def test_mypy_checks_the_mutants_of_every_group() -> None:
    config = mutation._config(GROUPS["store"])
    assert 'type_check_command = ["mypy", "-O", "json"]' in config
    assert mutation.MYPY.exists()  # which run_group puts first on the PATH


def test_the_mutants_not_tested_yet_are_those_without_a_result() -> None:
    codes: dict[str, int | None] = {
        "a.x_f__mutmut_1": None,
        "a.x_f__mutmut_2": 1,
        "b.x_g__mutmut_1": None,
    }
    assert unchecked(codes, None) == ["a.x_f__mutmut_1", "b.x_g__mutmut_1"]
    assert unchecked(codes, ["b.*"]) == ["b.x_g__mutmut_1"]
