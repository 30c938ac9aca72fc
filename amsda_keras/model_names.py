"""The models' names and the parts each can ablate, importable without Keras.

`amsda_keras.models` keys its builders by `MODEL_NAMES` and checks `ablate=` against
`ABLATIONS`; the command-line help and the config check read them here, so that `--help`
and a refused setting need no TensorFlow start-up.
"""

PROBE = "probe"
MODEL_NAMES = ("amsda", "baseline", "mahfnet", PROBE)
AMSDA_BRANCHES = ("text", "image", "fusion")
# Model -> the names its `ablate=` takes (A-MSDA's Table V, MAHFNet's Table 7).
ABLATIONS = {
    "amsda": AMSDA_BRANCHES + ("self_attention", "cross_attention", "fusion_weights"),
    "mahfnet": ("agai", "ieem", "hgfm", "mag", "cgf", "contrastive"),
}
