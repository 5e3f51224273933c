"""Video codecs.

* :mod:`.conditional` - DCVC-style learned conditional coding (intra frames from the image codec's
  blocks, inter frames conditioned on a propagated temporal context, spatiotemporal entropy model).
* :mod:`.nerv` - NeRV-style implicit representation fitted per video, weights entropy-coded.

Codecs are imported lazily through :mod:`neuralcodec.codecs.registry`; nothing is imported here.
"""
