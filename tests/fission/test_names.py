"""Kubernetes names for the export: every applet name becomes a distinct DNS-1123 label."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.fission.names import MAX_LABEL, Labels, dns_label, is_label


def test_plain_names_stay_as_they_are() -> None:
    assert dns_label("triage") == "triage"
    assert dns_label("deploy-fn", suffix="-secrets") == "deploy-fn-secrets"


def test_dots_and_underscores_become_dashes() -> None:
    assert dns_label("hello_py.v2") == "hello-py-v2"
    assert dns_label("__x__") == "x"
    assert dns_label("...") == "x"


def test_long_names_are_cut_and_keep_a_digest() -> None:
    long = "a" * 80
    label = dns_label(long, suffix="-secrets")
    assert len(label) == MAX_LABEL and label.endswith("-secrets") and is_label(label)
    assert label != dns_label("a" * 81, suffix="-secrets")


def test_labels_never_give_two_texts_the_same_label() -> None:
    labels = Labels()
    first, second = labels("a.b"), labels("a_b")
    assert first == "a-b" and second.startswith("a-b-") and second != first
    assert labels("a_b") == second  # the same text, the same label


@given(st.from_regex(NAME_PATTERN, fullmatch=True), st.sampled_from(["", "-secrets"]))
def test_every_applet_name_gives_a_label(name: str, suffix: str) -> None:
    assert is_label(dns_label(name, suffix=suffix))


def test_is_label() -> None:
    assert is_label("a") and is_label("a-1") and not is_label("-a") and not is_label("A")
    assert not is_label("a" * 64) and not is_label("a_b") and not is_label("")
