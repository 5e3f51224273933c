"""`make demo`: encode and decode a bundled speech clip with the shipped default model.

Prints the file's actual bitrate (what `codec info` reports) and objective quality (PESQ-WB,
STOI, mel distance) of the decoded audio against the original. Outputs go to ``demo-output/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from neuralcodec.cli import main as codec
from neuralcodec.media.audio import load_audio

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "samples" / "LJ001-0004.flac"


def run(out_dir: Path = Path("demo-output"), model: str = "speech") -> int:
    out_dir.mkdir(exist_ok=True)
    encoded, decoded = out_dir / "LJ001-0004.bin", out_dir / "LJ001-0004.decoded.wav"
    for argv in (["encode", str(SAMPLE), str(encoded), "--model", model],
                 ["decode", str(encoded), str(decoded)],
                 ["info", str(encoded)]):
        print(f"$ codec {' '.join(argv)}", flush=True)
        status = codec(argv)
        if status:
            return status
    from neuralcodec.train.losses import MultiResolutionMelLoss
    from neuralcodec.train.metrics import si_sdr, speech_quality

    ref, rate = load_audio(SAMPLE, channels="mono")
    out, _ = load_audio(decoded, channels="mono")
    quality = speech_quality(out, ref, rate)
    mel = MultiResolutionMelLoss(rate)(out[None], ref[None]).item()
    print(f"\nquality of {decoded.name} vs the original: PESQ-WB {quality['pesq_wb']:.2f}, "
          f"STOI {quality['stoi']:.3f}, mel distance {mel:.3f}, SI-SDR {si_sdr(out[0], ref[0]):.1f} dB")
    print(f"listen: {decoded}  (original: {SAMPLE})")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(run())
