"""amsda_keras: Keras 3 reimplementations of A-MSDA and MAHFNet for image+text sentiment.

Entry points are modules, `python -m amsda_keras.<name>` with `train`, `evaluate`, `predict`,
`export`, `features`, `attention`, `compare` or `reproduce`; `--help` on each imports no
Keras or TensorFlow. Nothing runs at import time.
"""

__version__ = "0.1.0"
