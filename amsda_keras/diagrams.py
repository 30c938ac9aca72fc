"""`python -m amsda_keras.diagrams`: block diagrams of MAHFNet and A-MSDA at the papers' widths.

Writes `mahfnet.png` and `amsda.png` with `keras.utils.plot_model`: one box per block, named as
in the papers (MAHFNet's IEEM, AGAI, CGF and MAG; A-MSDA's text, image and fusion branches and
their fusion weights), with each block's output shape. The heads are built on the papers'
encoder widths (CLIP ViT-B/16 tokens: 512-d text, 768-d image; DistilRoBERTa 768-d tokens and
EfficientNetB0 1280-d features) without weights or data.

plot_model needs pydot and Graphviz's `dot` program: `pip install pydot` and
`apt-get install graphviz` (or `conda install graphviz`, `brew install graphviz`).

Example:
    python -m amsda_keras.diagrams --output docs/figures
"""

import argparse
import shutil
from pathlib import Path

from amsda_keras.console import quiet_tensorflow
from amsda_keras.training.errors import user_errors

# Each model's head at its paper's encoder widths, 3 classes.
PAPER_WIDTHS = {"mahfnet": {"text_dim": 512, "image_dim": 768},
                "amsda": {"text_dim": 768, "image_dim": 1280}}
MISSING_GRAPHVIZ = ("plot_model needs pydot and Graphviz's `dot` program: `pip install pydot` "
                    "and `apt-get install graphviz` (or `conda install graphviz`, "
                    "`brew install graphviz`).")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.diagrams", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--output", default="docs/figures",
                        help="Folder for the PNGs. Default: %(default)s.")
    return parser


def write_diagrams(output):
    """Writes OUTPUT/<model>.png for each model of `PAPER_WIDTHS`. Returns the paths.

    Raises:
        FileNotFoundError: pydot or Graphviz's `dot` is missing (the message says how to
            install them).
    """
    try:
        import pydot  # noqa: F401 (plot_model imports it)
    except ImportError:
        raise FileNotFoundError(MISSING_GRAPHVIZ) from None
    if shutil.which("dot") is None:
        raise FileNotFoundError(MISSING_GRAPHVIZ)
    import keras

    from amsda_keras.models import MODEL_BUILDERS

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, widths in PAPER_WIDTHS.items():
        model = MODEL_BUILDERS[name](num_classes=3, **widths)
        path = output / f"{name}.png"
        partial = output / f".{name}.partial.png"  # plot_model takes the format from the suffix
        keras.utils.plot_model(model, to_file=str(partial), show_shapes=True,
                               show_layer_names=True, expand_nested=False, dpi=96)
        partial.replace(path)
        paths.append(path)
    return paths


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    with user_errors():
        for path in write_diagrams(args.output):
            print(f"Written {path}")


if __name__ == "__main__":
    main()
