"""Constructor-argument checks shared by the layers: each error names the argument."""

import numbers


def check_positive_ints(**values):
    """Raises a ValueError naming the first argument that is not a positive int (bools refused)."""
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def check_rate(name, value):
    """Raises unless `value` is a real number in [0, 1) (a dropout rate)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")


def check_positive(name, value):
    """Raises unless `value` is a real number > 0 (an epsilon or a temperature)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")


def check_choice(name, value, choices):
    """Raises unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def checked_subset(name, values, choices):
    """`values` (one str or a list of them) as a set, raising unless each is in `choices`."""
    values = [values] if isinstance(values, str) else list(values)
    if any(value not in choices for value in values):
        raise ValueError(f"`{name}` takes names from {choices}. Received: {name}={values}")
    return set(values)


def check_num_classes(num_classes):
    """Raises unless `num_classes` is an int of at least 2 (a model builder's class count)."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes}")
