"""A run's evaluation protocol: the split that picks the epoch, and the untouched ones.

The selection split drives the best-epoch checkpoint, early stopping and ReduceLROnPlateau
(and the probe's regularisation strength); it is never the split a summary reports.
`training.select_on`:
- `auto`: a `validation` split when the run has one (K-fold runs, a reused `splits.csv`);
  dev when the data has dev and test (the papers' protocol: select on dev, report test);
  otherwise a `validation` split carved from train, so dev stays untouched.
- `validation`: a `validation` split carved from train; dev and test are untouched.
- `dev`: dev selects and only test is untouched (dev numbers are then optimistic).
- `last`: nothing selects; every epoch runs and the last one is kept.
"""

import dataclasses

from amsda_keras.data.splits import VALIDATION, carve_validation

SELECT_ON = ("auto", VALIDATION, "dev", "last")
# The untouched split a summary reports, in order of preference.
REPORT_ORDER = ("test", "dev", VALIDATION)
TRAIN = "train"
SELECTION, UNTOUCHED = "selection", "untouched"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Attributes:
        selection: the split that picks the epoch, or None (`select_on: last`).
        untouched: the splits nothing was selected on, in the order of `REPORT_ORDER`.
    """

    selection: str
    untouched: tuple

    @property
    def report(self):
        """The untouched split a summary reports."""
        return report_split(self.untouched)

    def role(self, split):
        """`train`, `selection` or `untouched`."""
        if split == TRAIN:
            return TRAIN
        return SELECTION if split == self.selection else UNTOUCHED


def apply_protocol(frame, select_on, validation_fraction, seed):
    """Decides the selection split of a frame whose rows all have a split.

    Returns:
        `(frame, protocol, notes)`: the frame, with a `validation` split carved from train
        when the protocol needs one, the `Protocol`, and plain-language notes.

    Raises:
        ValueError: `select_on` names a split the data does not have.
    """
    present = set(frame["split"])
    if select_on == "auto":
        if VALIDATION in present:
            select_on = VALIDATION
        else:
            select_on = "dev" if {"dev", "test"} <= present else VALIDATION
    notes = []
    if select_on == VALIDATION and VALIDATION not in present:
        frame, note = carve_validation(frame, validation_fraction, seed)
        notes.append(note)
    selection = None if select_on == "last" else select_on
    splits = set(frame["split"])
    if selection is not None and selection not in splits:
        raise ValueError(f"`training.select_on: {select_on}`, but the data has no {select_on} "
                         f"split (it has {sorted(splits)}); use auto or validation.")
    untouched = tuple(sorted(splits - {TRAIN, selection}, key=_report_rank))
    protocol = Protocol(selection, untouched)
    notes.append(describe(protocol))
    return frame, protocol, notes


def describe(protocol):
    """One line saying which split selects and which are untouched."""
    selects = (f"the {protocol.selection} split picks the epoch" if protocol.selection
               else "nothing is selected (the last epoch is kept)")
    untouched = ", ".join(protocol.untouched) or "none"
    return f"Protocol: {selects}; untouched until the end: {untouched}."


def report_split(untouched):
    """The untouched split to report: test, else dev, else the first one; None if none."""
    ordered = sorted(untouched, key=_report_rank)
    return ordered[0] if ordered else None


def _report_rank(split):
    return (REPORT_ORDER.index(split) if split in REPORT_ORDER else len(REPORT_ORDER), split)
