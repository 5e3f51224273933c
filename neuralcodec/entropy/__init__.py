"""Entropy coding: learned probability models and exact, deterministic constriction bitstreams.

Layers inside this package:

* :mod:`.tables` - integer frequency tables (the only probabilities the coder sees), :class:`TableBank`.
* :mod:`.coder` - vectorized ANS coding of integer symbols under those tables (escapes included).
* :mod:`.families` - quantized Gaussian / Laplace / logistic via precomputed tables per scale index.
* :mod:`.intnet` - integer-exact networks for parameters the decoder must reproduce bit for bit.
* Entropy models (``nn.Module``; ``forward`` for the rate, ``compress``/``decompress`` for bytes):
  :class:`FactorizedPrior`, :class:`GaussianConditional`, :class:`Hyperprior` (and
  :class:`CheckerboardHyperprior`, with a two-pass spatial context and optional channel groups
  coded in sequence), :class:`TokenPrior`.

Guarantees:

* Precision: 24-bit probabilities (constriction ANS, 32-bit words); each stream carries at most
  8 bytes beyond the ideal code length of its integer tables (the final coder state).
* Exactness: the coder only ever sees integer tables (``freq / 2**24``); escapes make every int64
  symbol below ``2**62`` codable whatever the table's support.
* Determinism: tables are built once by :meth:`EntropyModel.freeze` and stored as buffers (or, for
  parametric families, built with IEEE-exact arithmetic); parameters the decoder recomputes from
  decoded data (hyperprior scale indices, causal token tables) come from integer-exact networks.
  Thread count, batch split and machine cannot change a decoded symbol. Float-only parts (the
  hyperprior mean) move reconstructions by float rounding but never symbols.
* Versioning: :data:`TABLE_VERSION` is stored in each frozen model; coding refuses other versions,
  and :meth:`EntropyModel.fingerprint` hashes every table.
"""

from neuralcodec.entropy.base import EntropyModel
from neuralcodec.entropy.checkerboard import CheckerboardHyperprior
from neuralcodec.entropy.coder import (
    StackDecoder,
    StackEncoder,
    decode_categorical,
    decode_indexed,
    encode_categorical,
    encode_indexed,
)
from neuralcodec.entropy.factorized import FactorizedPrior
from neuralcodec.entropy.families import FAMILIES, QuantizedFamily, ScaleGrid
from neuralcodec.entropy.gaussian import GaussianConditional
from neuralcodec.entropy.hyperprior import Hyperprior
from neuralcodec.entropy.tables import PRECISION, TABLE_VERSION, TOTAL, TableBank, freqs_from_pmf, freqs_from_weights
from neuralcodec.entropy.token_prior import TokenPrior

__all__ = [
    "CheckerboardHyperprior",
    "EntropyModel",
    "FAMILIES",
    "FactorizedPrior",
    "GaussianConditional",
    "Hyperprior",
    "PRECISION",
    "QuantizedFamily",
    "ScaleGrid",
    "StackDecoder",
    "StackEncoder",
    "TABLE_VERSION",
    "TOTAL",
    "TableBank",
    "TokenPrior",
    "decode_categorical",
    "decode_indexed",
    "encode_categorical",
    "encode_indexed",
    "freqs_from_pmf",
    "freqs_from_weights",
]
