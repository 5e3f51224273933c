"""The audio benchmark's file path: it runs exactly `codec encode` / `codec decode` on a preloaded model.

(It went stale once: `codec encode` gained an option the benchmark's hand-made arguments lacked.)
"""

from __future__ import annotations

import math

import numpy as np
import soundfile as sf

from benchmarks.audio import cli_decode, cli_encode, token_bits
from neuralcodec.codecs.registry import build_codec


def test_cli_round_trip_and_token_bits(tmp_path):
    codec = build_codec({"codec": "audio", "name": "bench-tiny", "sample_rate": 16000, "hop_length": 320,
                         "latent_dim": 16, "chunk_seconds": 0.5,
                         "encoder": {"channels": [16, 16], "depths": [1, 1], "strides": [2], "fft_factor": 4},
                         "decoder": {"type": "vocos", "dim": 16, "depth": 1, "upsample": 2},
                         "quantizer": {"name": "rvq", "num_codebooks": 2, "codebook_size": 16, "codebook_dim": 4},
                         "prior": {"context": "causal"}}).eval().freeze_entropy_models()
    t = np.arange(16000) / 16000
    src = tmp_path / "tone.wav"
    sf.write(str(src), 0.3 * np.sin(2 * math.pi * 220 * t), 16000, subtype="PCM_16")
    cli_encode(codec, src, tmp_path / "tone.bin")
    cli_decode(codec, tmp_path / "tone.bin", tmp_path / "tone.out.wav")
    decoded, rate = sf.read(str(tmp_path / "tone.out.wav"))
    assert rate == 16000 and decoded.shape[0] == 16000
    payload, nominal = token_bits(codec, tmp_path / "tone.bin")
    assert 0 < payload and nominal == 50 * 2 * 4  # 1 s x 50 frames x 2 codebooks x 4 bits


def test_pitch_table_averages_the_per_clip_errors():
    """Each codec's row holds the mean over clips of the median F0 error and the three error rates
    (in %); clips where a measure is undefined (NaN) are left out, n/a rows are skipped."""
    from benchmarks.audio import Run, pitch_table

    clips = [{"corpus": "a", "f0_cents": 40.0, "gpe": 0.1, "vde": 0.2, "ffe": 0.25},
             {"corpus": "b", "f0_cents": math.nan, "gpe": math.nan, "vde": 0.4, "ffe": 0.45}]
    lines = pitch_table([Run("ours", per_clip=clips), Run("missing", note="no ffmpeg")])
    assert lines[2] == "| ours | 40 | 10.0 % | 30.0 % | 35.0 % |" and len(lines) == 3
