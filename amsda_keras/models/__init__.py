"""One builder per model; `MODEL_BUILDERS` maps the `--model` name to it.

`MODEL_DEFAULTS` holds the settings a model trains with unless a config file or flag says
otherwise (its paper's recipe, where that differs from the global defaults).
"""

from amsda_keras.models import amsda
from amsda_keras.models.amsda import build_amsda
from amsda_keras.models.baseline import build_baseline
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.models.probe import PROBE, build_probe

MODEL_BUILDERS = {"amsda": build_amsda, "baseline": build_baseline, "mahfnet": build_mahfnet,
                  PROBE: build_probe}
MODEL_DEFAULTS = {"amsda": amsda.TRAINING_DEFAULTS}
