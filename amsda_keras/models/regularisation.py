"""Regularisation the heads share beyond what the papers have (the generalisation levers)."""

import keras


def feature_dropout(features, rate, name):
    """`features` through a `Dropout` of `rate` (the heads' `input_dropout`), or unchanged and
    without a layer when `rate` is 0, so that a head without it builds and initialises exactly
    as it did before the option existed."""
    return keras.layers.Dropout(rate, name=name)(features) if rate else features
