"""Fitting the probe (`models/probe.py`): scikit-learn's multinomial logistic regression on the
standardised pooled features, its inverse L2 strength C picked on the selection split.

The standardisation and the regression fold into the probe's `logits` layer, so the run
folder holds an ordinary `model.keras` that `evaluate`, `predict` and `export` use as they
use any other model. `history.csv` has one line per candidate C instead of one per epoch.
"""

import keras
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.preprocessing import StandardScaler

from amsda_keras.files import replaced_atomically

# scikit-learn's default C, the probe's when nothing selects (`select_on: last`).
DEFAULT_C = 1.0
MAX_ITERATIONS = 2000
FEATURE_BATCH_SIZE = 256


def check_probe_settings(config):
    """Raises a `ValueError` for settings the probe cannot honour (it reads cached pooled
    features of frozen encoders, and weighs classes instead of oversampling them)."""
    refused = {
        "encoders.trainable": config["encoders"]["trainable"],
        "encoders.text_trainable_layers": config["encoders"]["text_trainable_layers"],
        "training.oversample": config["training"]["oversample"],
        "features.cache": not config["features"]["cache"],
    }
    set_keys = [key for key, value in refused.items() if value]
    if set_keys:
        raise ValueError(f"The probe fits a logistic regression on cached pooled features of "
                         f"frozen encoders; it cannot use {', '.join(set_keys)} "
                         f"(for balanced classes, set training.class_weight=balanced).")


def fit_probe(model, batches, train_frame, selection_frame, settings, run_dir):
    """Fits the probe, writes `history.csv` (one line per C) and `model.keras` (the chosen C).

    Args:
        model: the probe from `build_probe`.
        batches: the `make(part, **options)` function of `inputs.batches_for`.
        train_frame, selection_frame: the rows to fit on and to pick C on (None: use
            `DEFAULT_C`).
        settings: the `training` config (`probe_c_values`, `class_weight`).
        run_dir: the run folder.

    Returns:
        `{"probe_c": chosen C}`.
    """
    features = keras.Model(model.input, model.get_layer("logits").input)

    def arrays(frame):
        x = features.predict(batches(frame, batch_size=FEATURE_BATCH_SIZE, with_labels=False),
                             verbose=0)
        return np.asarray(x, dtype=np.float64), frame["label"].to_numpy()

    x_train, y_train = arrays(train_frame)
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train)
    if selection_frame is None:
        candidates, x_select, y_select = [DEFAULT_C], None, None
    else:
        candidates = sorted(settings["probe_c_values"])
        x_select, y_select = arrays(selection_frame)
        x_select = scaler.transform(x_select)
    num_classes = model.output_shape[-1]
    rows, fitted = [], []
    for c in candidates:
        classifier = LogisticRegression(
            C=c, max_iter=MAX_ITERATIONS,
            class_weight="balanced" if settings["class_weight"] == "balanced" else None,
        ).fit(x_train, y_train)
        row = {"c": c, **_scores(classifier, x_train, y_train, num_classes)}
        if x_select is not None:
            row.update({f"val_{name}": value for name, value in
                        _scores(classifier, x_select, y_select, num_classes).items()})
        rows.append(row)
        fitted.append(classifier)
    history = pd.DataFrame(rows)
    best = best_candidate(history) if x_select is not None else 0
    if len(candidates) > 1 and best in (0, len(candidates) - 1):
        print(f"Note: the probe's best C, {candidates[best]:g}, is the "
              f"{'smallest' if best == 0 else 'largest'} of training.probe_c_values; a wider "
              f"grid may do better.")
    with replaced_atomically(run_dir / "history.csv") as temporary:
        history.to_csv(temporary, index=False)
    _set_logits(model, fitted[best], scaler, num_classes)
    with replaced_atomically(run_dir / "model.keras") as temporary:
        model.save(temporary)
    return {"probe_c": float(candidates[best])}


def best_candidate(history):
    """The row of `history` with the best validation accuracy; among ties, the lowest
    validation loss (a few hundred posts often give several C the same accuracy, and the
    loss tells them apart), then the smallest C."""
    ranked = history.sort_values(["val_accuracy", "val_loss", "c"],
                                 ascending=[False, True, True], kind="stable")
    return int(ranked.index[0])


def _scores(classifier, x, y, num_classes):
    probabilities = _all_classes(classifier, classifier.predict_proba(x), num_classes)
    return {"accuracy": accuracy_score(y, probabilities.argmax(axis=1)),
            "loss": log_loss(y, probabilities, labels=range(num_classes))}


def _all_classes(classifier, values, num_classes):
    """Columns for every class, in class order; classes absent from train get 0."""
    full = np.zeros((len(values), num_classes))
    full[:, classifier.classes_] = values
    return full


def _set_logits(model, classifier, scaler, num_classes):
    """Writes `classifier(scaler(x))` into the `logits` Dense layer: W / s and b - W m / s.

    A class absent from the training split gets a logit far below the others."""
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:
        # One row for two classes: p(class 1) = sigmoid(z) = softmax([-z / 2, z / 2]).
        coef, intercept = np.stack([-coef[0], coef[0]]) / 2, np.array([-1, 1]) * intercept / 2
    kernel = np.zeros((coef.shape[1], num_classes))
    bias = np.full(num_classes, -1e4)
    kernel[:, classifier.classes_] = (coef / scaler.scale_).T
    bias[classifier.classes_] = intercept - coef @ (scaler.mean_ / scaler.scale_)
    model.get_layer("logits").set_weights([kernel, bias])
