"""One builder per model; `MODEL_BUILDERS` maps the `--model` name to it.

`MODEL_DEFAULTS` holds the settings a model trains with unless a config file or flag says
otherwise (its paper's recipe, where that differs from the global defaults).
"""

from amsda_keras.model_names import MODEL_NAMES
from amsda_keras.models import amsda, mahfnet
from amsda_keras.models.amsda import build_amsda
from amsda_keras.models.baseline import build_baseline
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.models.probe import build_probe

# In the order of `model_names.MODEL_NAMES`, which `--help` reads without importing Keras.
MODEL_BUILDERS = dict(zip(MODEL_NAMES, (build_amsda, build_baseline, build_mahfnet, build_probe),
                          strict=True))
MODEL_DEFAULTS = {"amsda": amsda.TRAINING_DEFAULTS}
# The sizes a model trains at on the built-in demo dataset (tiny encoders, 480 posts), where
# the paper's would take half an hour on a CPU; any the config sets win.
MODEL_DEMO_ARGS = {"mahfnet": mahfnet.DEMO_ARGS}
