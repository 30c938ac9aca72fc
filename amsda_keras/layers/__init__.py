"""Custom layers, one module per paper block.

Abbreviations (the papers'):
- A-MSDA (`AMSDA`): Advanced Multimodal Sentiment Analysis with Dual Attention (IJACSA 2025).
  Its one custom block is `FusionWeights`, the learned mix of the branches' logits; its
  attention layers are Keras' own `MultiHeadAttention`.
- MAHFNet (Electronics 2025) blocks:
  - AGAI: Attention-Guided Alignment and Interaction (modality gate, bidirectional
    cross-attention, interaction feature and contrastive embeddings).
  - IEEM: Intra-Modal Emotion Extraction Module (self-attention per modality).
  - HGFM: Hierarchical Gated Fusion Module, made of
    - CGF: Cross-Gated Fusion, and
    - MAG: Multi-Scale Attention Gating (depthwise + dilated convolutions, channel attention
      and an adaptive gate).
- `TokenResampler` is ours: it brings token sequences of different lengths to one length,
  which CGF and MAG need (see docs/mahfnet.md).
"""

from amsda_keras.layers.agai import AGAI, info_nce
from amsda_keras.layers.cgf import CGF
from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.layers.ieem import IEEM
from amsda_keras.layers.mag import MAG
from amsda_keras.layers.token_resampler import TokenResampler

__all__ = ["AGAI", "CGF", "FusionWeights", "IEEM", "MAG", "TokenResampler", "info_nce"]
