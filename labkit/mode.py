"""Quick mode: fewer epochs and samples when the autograder, CI or a hurried laptop runs a lab.

Every lab chooses its sizes in one settings cell:

    QUICK = lk.quick_mode()
    EPOCHS = lk.by_mode(quick=2, full=20)

Quick mode is on when ``LABKIT_QUICK`` is set to 1/true/yes, or when nbgrader
runs the notebook (it sets ``NBGRADER_EXECUTION`` while autograding or
validating).  ``LABKIT_QUICK=0`` forces full mode even under nbgrader.
"""
import os

__all__ = ["by_mode", "quick_mode"]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def quick_mode() -> bool:
    """True when the lab should run its quick variant (see the module docstring)."""
    switch = os.environ.get("LABKIT_QUICK", "").strip().lower()
    if switch in _TRUE:
        return True
    if switch in _FALSE:
        return False
    if switch:
        raise ValueError(f"LABKIT_QUICK must be 1 or 0 (or true/false), got {switch!r}")
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def by_mode(*, quick, full):
    """``quick`` in quick mode, else ``full``: the one place a lab's sizes are chosen."""
    return quick if quick_mode() else full
