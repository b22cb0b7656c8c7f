import pytest

from labkit.mode import by_mode, quick_mode


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"NBGRADER_EXECUTION": "autograde"}, True),
    ({"NBGRADER_EXECUTION": "validate"}, True),
    ({"LABKIT_QUICK": "1"}, True),
    ({"LABKIT_QUICK": "yes"}, True),
    ({"LABKIT_QUICK": "0", "NBGRADER_EXECUTION": "autograde"}, False),
])
def test_quick_mode_follows_the_environment(monkeypatch, env, expected):
    monkeypatch.delenv("LABKIT_QUICK", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert quick_mode() is expected
    assert by_mode(quick="q", full="f") == ("q" if expected else "f")


def test_a_typo_in_the_switch_is_an_error(monkeypatch):
    monkeypatch.setenv("LABKIT_QUICK", "quick")
    with pytest.raises(ValueError, match="LABKIT_QUICK must be 1 or 0"):
        quick_mode()
