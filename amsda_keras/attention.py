"""`python -m amsda_keras.attention`: draw AGAI cross-attention heatmaps of a trained MAHFNet run.

One PNG per sample (like Figure 7 of the MAHFNet paper): the image under its text-to-image
attention, the image-to-text attention per text token, and the full token x patch matrix.
The data, split, encoders and model are read from the run folder.

Examples:
    python -m amsda_keras.attention --run runs/mahfnet-20261123-101500 --sample 1207 3581
    python -m amsda_keras.attention --run runs/mahfnet-20261123-101500 --split dev --count 20
"""

import argparse

from amsda_keras.console import quiet_tensorflow
from amsda_keras.training.errors import user_errors


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.attention", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", required=True, help="MAHFNet run folder written by train.")
    samples = parser.add_mutually_exclusive_group(required=True)
    samples.add_argument("--sample", nargs="+", metavar="ID", help="Sample ids to draw.")
    samples.add_argument("--split", help="Draw the first --count samples of this split.")
    parser.add_argument("--count", type=int, default=8,
                        help="How many samples of --split (default: 8).")
    parser.add_argument("--output", help="Folder for <id>.png (default: RUN/attention).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    from amsda_keras.training.attention_maps import write_attention_maps

    with user_errors():
        write_attention_maps(args.run, sample_ids=args.sample, split=args.split,
                             count=args.count, output=args.output,
                             progress=not args.no_progress)


if __name__ == "__main__":
    main()
