"""Probabilistic circuits as entropy models: the Hidden Chow-Liu Tree and its exact coder.

Reference: Liu, Mandt, Van den Broeck, "Lossless Compression with Probabilistic Circuits"
(ICLR 2022). A circuit computes any marginal in one pass, so the conditionals needed by an
arithmetic/ANS coder come from marginal queries instead of ``D`` network evaluations:

* :mod:`.structure` - Chow-Liu tree from pairwise mutual information, layer and coding schedules;
* :mod:`.hclt` - the HCLT circuit (vectorized by tree depth), marginals, EM statistics;
* :mod:`.em` - structure learning + mini-batch EM (:func:`fit_hclt`);
* :mod:`.coder` - the float64 depth-first walk that turns conditionals into integer tables and
  codes with constriction (:class:`CircuitCoder`);
* :mod:`.token_grid` - the circuit as a prior over a quantizer's token grid ``[Q, T]``, one
  HCLT over windows of frames, with exact marginals for partial windows and codebook subsets
  (:class:`CircuitTokenPrior`).

Usable on any integer array ``[N, D]`` with values in ``[0, K)``: image patches, or the token
grids of a quantizer (:mod:`.token_grid`).
"""

from neuralcodec.entropy.circuits.coder import CODER_VERSION, CircuitCoder
from neuralcodec.entropy.circuits.em import FitConfig, fit_hclt, initialize
from neuralcodec.entropy.circuits.hclt import HCLT, EMStatistics
from neuralcodec.entropy.circuits.structure import (
    TreeLayout,
    chow_liu_parent,
    maximum_spanning_tree,
    pairwise_mutual_information,
    root_tree,
)
from neuralcodec.entropy.circuits.token_grid import CircuitTokenPrior

__all__ = [
    "CODER_VERSION",
    "CircuitCoder",
    "CircuitTokenPrior",
    "EMStatistics",
    "FitConfig",
    "HCLT",
    "TreeLayout",
    "chow_liu_parent",
    "fit_hclt",
    "initialize",
    "maximum_spanning_tree",
    "pairwise_mutual_information",
    "root_tree",
]
