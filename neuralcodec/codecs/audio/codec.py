"""The neural audio codec: spectral encoder -> quantizer -> token prior -> Vocos/HiFi-GAN decoder.

Shapes: waveforms ``[B, 1, T]`` at ``sample_rate`` (the model is mono; multichannel audio is coded
per channel), latents ``[B, D, F]``, codes int64 ``[B, Q, F]`` with ``F = ceil(T / hop_length)``.

Padding policy (documented for tokenizer users): a waveform of ``T`` samples is zero-padded at the
end to ``F * hop_length``; in a batch with ``lengths``, every item is treated as if encoded alone
(the encoder masks batch padding after every temporal layer), and its codes are the first
``ceil(length / hop_length)`` frames.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from neuralcodec.bitstream import Modality
from neuralcodec.codecs.audio.decoders import HiFiGANDecoder, VocosDecoder
from neuralcodec.codecs.audio.encoder import SpectralEncoder
from neuralcodec.codecs.audio.pitch import PitchQuantizer, YinPitch
from neuralcodec.codecs.base import Codec, Metadata
from neuralcodec.entropy import PRECISION, TABLE_VERSION, TokenPrior
from neuralcodec.entropy.circuits.token_grid import CircuitTokenPrior, CircuitTokenPriorModule
from neuralcodec.errors import BitstreamError, MediaError, UsageError
from neuralcodec.media.audio import resample
from neuralcodec.quantizers import QuantizerOutput, build_quantizer


@dataclass
class AudioCodecOutput:
    """What the training forward pass returns."""

    audio: Tensor  # [B, 1, T] reconstruction
    quantizer: QuantizerOutput  # quantized latent, codes [B, Q, F], quantizer loss, metrics
    token_bits: Tensor  # scalar: -sum log2 p(codes) under the token prior (prior training loss)
    num_tokens: Tensor  # scalar: codes that are present (not dropped by quantizer dropout)


def frames_for(num_samples: int, hop_length: int) -> int:
    """Number of token frames for ``num_samples`` model-rate samples."""
    return max(1, math.ceil(num_samples / hop_length))


class AudioCodec(Codec):
    """WavTokenizer/HiFi-Codec-style audio codec with an entropy-coded token stream.

    ``config`` keys: ``sample_rate``, ``hop_length``, ``latent_dim``, ``encoder`` (kwargs of
    :class:`SpectralEncoder`), ``decoder`` (``type``: ``vocos`` | ``hifigan`` + kwargs),
    ``quantizer`` (kwargs of :func:`neuralcodec.quantizers.build_quantizer`), ``prior`` (kwargs of
    :class:`neuralcodec.entropy.TokenPrior`), optional ``chunk_seconds``, ``name`` and
    ``default_codebooks`` (the setting files are coded with unless a bitrate is asked for).

    Optional ``pitch`` (kwargs ``levels``, ``fmin``, ``fmax``, ``harmonics`` of
    :class:`~neuralcodec.codecs.audio.pitch.PitchQuantizer`; Vocos decoder only): F0 is sent
    explicitly. The encoder tracks it per token frame (:class:`~neuralcodec.codecs.audio.pitch.YinPitch`,
    frame-local, so chunking and batching keep their guarantees), codes row 0 holds the pitch level
    (0 = unvoiced) and rows ``1..`` the quantizer's codes; the decoder is conditioned on it. The
    bitrate settings then count the pitch row: ``num_codebooks = 1 + quantizer stages``.

    Optional ``circuit_prior`` (kwargs ``window``, ``hidden``, ``emissions`` of
    :class:`~neuralcodec.entropy.circuits.token_grid.CircuitTokenPriorModule`): a second entropy
    model for the same tokens, a probabilistic circuit fitted on tokenized data
    (``codec train experiment=music_circuit_prior``); its alphabet is the largest codebook's (a pitch
    row of 128 levels beside 1024-entry RVQ rows costs next to nothing). The token prior stays the default; the circuit
    codes when selected (``select_entropy_model("circuit")``, ``codec encode --entropy-model circuit``),
    and the container's entropy-model id names the one that coded a file. The circuit is not part of
    the model fingerprint (it has its own, inside its id), so adding one to a model keeps every file
    the model wrote decodable.
    """

    modality = Modality.AUDIO
    codec_id = "audio"
    optional_entropy_models = ("circuit_prior",)
    optional_entropy_model_ids = {"circuit-prior/": "circuit"}

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        self.sample_rate = int(cfg["sample_rate"])
        self.hop_length = int(cfg["hop_length"])
        latent_dim = int(cfg["latent_dim"])
        self.encoder = SpectralEncoder(self.hop_length, latent_dim, **cfg.get("encoder", {}))
        self.quantizer = build_quantizer(dim=latent_dim, **cfg["quantizer"])
        dec_cfg = dict(cfg.get("decoder", {}))
        dec_type = dec_cfg.pop("type", "vocos")
        self.pitch: PitchQuantizer | None = None
        self.pitch_tracker: YinPitch | None = None
        if cfg.get("pitch") is not None:
            if dec_type != "vocos":
                raise ValueError(f"pitch conditioning needs the vocos decoder, not {dec_type!r}")
            self.pitch = PitchQuantizer(**cfg["pitch"])
            self.pitch_tracker = YinPitch(self.sample_rate, self.hop_length, fmin=self.pitch.fmin, fmax=self.pitch.fmax)
            dec_cfg["pitch_features"] = self.pitch.num_features
            if dec_cfg.get("harmonic_excitation"):
                dec_cfg.update(sample_rate=self.sample_rate, fmin=self.pitch.fmin)
        elif dec_cfg.get("harmonic_excitation"):
            raise ValueError("decoder.harmonic_excitation needs the pitch row (config pitch)")
        if dec_type == "vocos":
            self.decoder = VocosDecoder(latent_dim, self.hop_length, **dec_cfg)
        elif dec_type == "hifigan":
            self.decoder = HiFiGANDecoder(latent_dim, self.hop_length, **dec_cfg)
        else:
            raise ValueError(f"unknown decoder type {dec_type!r} (expected 'vocos' or 'hifigan')")
        self.prior = TokenPrior(self.codebook_sizes, **cfg.get("prior", {}))
        self.circuit_prior: CircuitTokenPriorModule | None = None
        if cfg.get("circuit_prior") is not None:
            # One alphabet for all rows: the largest codebook's. A smaller row (the pitch row) only
            # ever emits its own symbols, so the others' probabilities fit to next to nothing.
            self.circuit_prior = CircuitTokenPriorModule(self.num_codebooks, self.codebook_size,
                                                         **cfg["circuit_prior"])
        if self.default_codebooks not in self.codebook_settings:
            raise ValueError(f"default_codebooks {self.default_codebooks} is not one of the settings {self.codebook_settings}")
        self.chunk_frames = max(1, int(round(float(cfg.get("chunk_seconds", 10.0)) * self.frame_rate)))
        # Context on each side of a chunk: covers the encoder's and decoder's receptive fields, so
        # chunked coding matches whole-file coding up to float rounding (see tests). Not with
        # self-attention (encoder/decoder ``attention: true``): its receptive field is the whole
        # window, so chunked results only approximate whole-file ones (no tolerance is promised).
        self.encoder_margin = int(cfg.get("encoder_margin_frames", 32))
        self.decoder_margin = int(cfg.get("decoder_margin_frames", 48))

    # ----- properties used by tokenizer users -----------------------------------------------
    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        """Rows of the codes: the quantizer's stages, plus the pitch row when the model sends pitch."""
        return self.quantizer.num_codebooks + self._pitch_rows

    @property
    def codebook_sizes(self) -> list[int]:
        return ([self.pitch.levels] if self.pitch is not None else []) + list(self.quantizer.codebook_sizes)

    @property
    def _pitch_rows(self) -> int:
        return 0 if self.pitch is None else 1

    @property
    def codebook_size(self) -> int:
        return max(self.codebook_sizes)

    @property
    def codebook_settings(self) -> list[int]:
        """The numbers of codebooks a stream may use (each a lower-bitrate prefix of the codes).

        Every count for residual VQ; whole stages only for group-residual VQ (multiples of its groups);
        with pitch, the pitch row is always sent and counted.
        """
        step = self.quantizer.codebook_step
        return [self._pitch_rows + q for q in range(step, self.quantizer.num_codebooks + 1, step)]

    @property
    def entropy_models(self) -> dict[str, str]:
        """``token-prior`` (the default) and, when the model carries one, ``circuit``."""
        models = {"token-prior": f"token-prior/{self.prior.context}/tables-v{TABLE_VERSION}"}
        if self.circuit_prior is not None:
            models["circuit"] = self.circuit_prior.entropy_model_id
        return models

    @property
    def entropy_model_id(self) -> str:
        return self.entropy_models[self.entropy_model]

    @property
    def coder_precision(self) -> int:
        return PRECISION  # the token prior's tables and the circuit coder's (24 bits) alike

    def set_circuit_prior(self, prior: CircuitTokenPrior | None) -> "AudioCodec":
        """Carry ``prior`` (a circuit fitted on this codec's tokens) as the optional ``circuit``
        entropy model, replacing any other; ``None`` drops it. The fingerprint does not change."""
        if prior is None:
            self.circuit_prior = None
            self.config.pop("circuit_prior", None)
        else:
            if prior.num_codebooks != self.num_codebooks or prior.num_categories != self.codebook_size:
                raise ValueError(f"the circuit models {prior.num_codebooks} codebooks of {prior.num_categories} "
                                 f"tokens, this codec has {self.num_codebooks} of up to {self.codebook_size}")
            self.circuit_prior = CircuitTokenPriorModule.from_prior(prior)
            self.config["circuit_prior"] = self.circuit_prior.config
        if self._entropy_model == "circuit" and prior is None:
            self._entropy_model = None
        return self

    @property
    def token_coder(self) -> TokenPrior | CircuitTokenPriorModule:
        """The entropy model that codes the tokens now (:attr:`entropy_model`)."""
        if self.entropy_model == "circuit":
            assert self.circuit_prior is not None
            return self.circuit_prior
        return self.prior

    def nominal_bitrate(self, num_codebooks: int | None = None) -> float:
        """Bits per second of the raw token stream (``log2`` of codebook sizes x frame rate) with
        ``num_codebooks`` rows (:attr:`default_codebooks` when None)."""
        q = num_codebooks or self.default_codebooks
        return sum(math.log2(s) for s in self.codebook_sizes[:q]) * self.frame_rate

    # ----- training path --------------------------------------------------------------------
    def forward(self, wav: Tensor) -> AudioCodecOutput:
        """``wav`` ``[B, 1, T]`` (``T`` a multiple of ``hop_length``) -> reconstruction, quantizer output, token bits."""
        z = self.encoder(wav)
        q = self.quantizer(z)
        codes = q.codes.detach()
        if self.pitch is not None:
            pitch = self._pitch_codes(wav)
            audio = self.decoder(q.quantized, pitch=self.pitch.features(pitch), f0=self._excitation_f0(pitch))
            codes = torch.cat([pitch[:, None], codes], dim=1)
        else:
            audio = self.decoder(q.quantized)
        # Quantizer dropout marks absent stages with -1; the prior treats them exactly as the coder
        # does at that item's lower bitrate (absent context, zero cost).
        present = codes >= 0
        likelihoods = self.prior(codes)
        token_bits = -torch.log2(likelihoods.clamp_min(1e-12)).sum()
        return AudioCodecOutput(audio=audio[..., : wav.shape[-1]], quantizer=q, token_bits=token_bits,
                                num_tokens=present.sum())

    # ----- tokenizer API --------------------------------------------------------------------
    def _as_batch(self, wav: Tensor) -> Tensor:
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[:, None]
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a mono waveform [T], [B, T] or [B, 1, T], got shape {tuple(wav.shape)}")
        return wav.float()

    @torch.no_grad()
    def encode(self, wav: Tensor, sample_rate: int | None = None, lengths: Tensor | None = None,
               num_codebooks: int | None = None, exact: bool = True) -> Tensor:
        """Waveform ``[B, 1, T]`` (or ``[B, T]``/``[T]``) -> codes int64 ``[B, Q, F]``.

        ``sample_rate`` (if given and different) resamples first. With ``lengths`` (samples per item,
        at the input rate), item ``i`` gets the codes it gets alone in its first
        ``ceil(length_i * model_rate / rate / hop)`` frames; later frames are padding, filled with 0.

        ``exact=True`` (default) guarantees this bit for bit by running the network on each item at
        its own length. ``exact=False`` runs one masked batch (every temporal layer re-zeroes the
        padding, so the maths is identical) — faster on GPUs, but float rounding of batched
        kernels can flip a code that sits on a near-tie between two codewords (rare).
        """
        wav = self._as_batch(wav)
        if lengths is not None and exact:
            lengths = torch.as_tensor(lengths).tolist()
            items = [self.encode(wav[i:i + 1, :, : int(n)], sample_rate, num_codebooks=num_codebooks)
                     for i, n in enumerate(lengths)]
            width = max(c.shape[-1] for c in items)
            return torch.cat([F.pad(c, (0, width - c.shape[-1])) for c in items])
        if sample_rate is not None and sample_rate != self.sample_rate:
            if lengths is not None:
                lengths = torch.ceil(lengths.float() * self.sample_rate / sample_rate).long()
            wav = resample(wav, sample_rate, self.sample_rate)
        frames = frames_for(wav.shape[-1], self.hop_length)
        wav = F.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=wav.device)
            valid = wav.new_zeros(wav.shape[0], 1, wav.shape[-1])
            for i, n in enumerate(lengths.tolist()):
                valid[i, :, : int(n)] = 1
            wav = wav * valid  # samples past an item's length are batch padding: zero, as when alone
            item_frames = torch.clamp(torch.ceil(lengths.float() / self.hop_length), min=1).long()
            mask = (torch.arange(frames, device=wav.device)[None] < item_frames[:, None]).float()[:, None]
        codes = self._tokens(wav, num_codebooks, mask)
        if mask is not None and self.pitch is not None:
            codes[:, 0] *= mask[:, 0].long()  # batch padding frames: unvoiced, as the RVQ rows' padding is arbitrary
        return codes

    def _tokens(self, wav: Tensor, num_codebooks: int | None, mask: Tensor | None = None) -> Tensor:
        """Model-rate waveform ``[B, 1, F * hop]`` -> codes ``[B, q, F]`` with the first ``q`` rows (all when None)."""
        q = self.num_codebooks if num_codebooks is None else int(num_codebooks)
        z = self.encoder(wav, mask)
        stages = q - self._pitch_rows
        if stages < 1:
            raise UsageError(f"this model sends pitch in row 0: num_codebooks must be at least 2, got {q}")
        codes = self.quantizer.encode(z) if stages == self.quantizer.num_codebooks else \
            self.quantizer.encode(z, num_codebooks=stages)
        if self.pitch is None:
            return codes
        return torch.cat([self._pitch_codes(wav)[:, None], codes], dim=1)

    def _pitch_codes(self, wav: Tensor) -> Tensor:
        """Pitch level per token frame ``[B, F]`` of a model-rate waveform ``[B, 1, F * hop]``."""
        assert self.pitch is not None and self.pitch_tracker is not None
        f0, _ = self.pitch_tracker(wav[:, 0].detach().float())
        return self.pitch.encode(f0)

    def _excitation_f0(self, pitch_codes: Tensor) -> Tensor | None:
        """F0 in Hz ``[B, F]`` for the decoder's harmonic excitation (None when it has none)."""
        if self.pitch is None or self.decoder.excitation is None:
            return None
        return self.pitch.decode(pitch_codes)

    def excitation_cycles(self, codes: Tensor) -> Tensor | None:
        """Phase advance of the decoder's harmonic excitation over the frames of ``codes [B, Q', F]``,
        in cycles modulo 1 (float64 ``[B]``; None without excitation): what :meth:`decode` of later
        frames takes as ``phase0`` to continue the whole-file decoding exactly."""
        f0 = self._excitation_f0(codes[:, 0])
        return None if f0 is None else self.decoder.excitation.cycles(f0)

    @torch.no_grad()
    def decode(self, codes: Tensor, phase0: Tensor | None = None) -> Tensor:
        """Codes ``[B, Q', F]`` (``Q' <= Q`` for a lower bitrate) -> waveform ``[B, 1, F * hop]``.

        ``phase0`` (``[B]`` cycles, models with a harmonic excitation only): the excitation's phase at
        the first frame, :meth:`excitation_cycles` of the frames before them (0 when None)."""
        if codes.dim() != 3:
            raise ValueError(f"expected codes [B, Q, F], got shape {tuple(codes.shape)}")
        if self.pitch is None:
            return self.decoder(self.quantizer.decode(codes))
        if codes.shape[1] < 2:
            raise ValueError(f"this model's codes hold the pitch row and at least one quantizer row, got {codes.shape[1]} row(s)")
        if codes.numel() and (int(codes[:, 0].min()) < 0 or int(codes[:, 0].max()) >= self.pitch.levels):
            raise ValueError(f"pitch codes (row 0) must be in [0, {self.pitch.levels}), got values in "
                             f"[{int(codes[:, 0].min())}, {int(codes[:, 0].max())}]")
        return self.decoder(self.quantizer.decode(codes[:, 1:]), pitch=self.pitch.features(codes[:, 0]),
                            f0=self._excitation_f0(codes[:, 0]), phase0=phase0)

    # ----- chunked coding (container payloads) ----------------------------------------------
    def bitrate_to_codebooks(self, kbps: float) -> int:
        """The largest number of codebooks whose nominal bitrate is at most ``kbps``."""
        settings = self.codebook_settings
        usable = [q for q in settings if self.nominal_bitrate(q) <= kbps * 1000 + 1e-6]
        if not usable:
            raise UsageError(f"bitrate {kbps} kbit/s is below this model's lowest setting "
                             f"({self.nominal_bitrate(settings[0]) / 1000:.3f} kbit/s nominal)")
        return max(usable)

    @property
    def default_codebooks(self) -> int:
        """The setting files are coded with when no bitrate is asked for (config ``default_codebooks``;
        all codebooks unless set, e.g. to keep a pitch model's default within a bitrate budget)."""
        return int(self.config.get("default_codebooks") or self.num_codebooks)

    def _check_codebooks(self, num_codebooks: int | None) -> int:
        q = int(num_codebooks or self.default_codebooks)
        if not 1 <= q <= self.num_codebooks:
            raise UsageError(f"num_codebooks must be in 1..{self.num_codebooks}, got {q}")
        if q not in self.codebook_settings:
            raise UsageError(f"num_codebooks must be one of {self.codebook_settings} for this model, got {q}")
        return q

    def _metadata(self, in_rate: int, channels: int, in_samples: int, q: int) -> Metadata:
        # Kept small: a fixed header costs real bits on short clips. The model-rate length is
        # derived (see model_samples), the model's own rate is covered by its fingerprint.
        return {"sample_rate": in_rate, "channels": channels, "num_samples": in_samples,
                "num_codebooks": q, "chunk_frames": self.chunk_frames, "nominal_bps": self.nominal_bitrate(q)}

    def model_samples(self, metadata: Mapping[str, Any]) -> int:
        """Length at the model rate of a stream (the resampler's output length for the input)."""
        return math.ceil(int(metadata["num_samples"]) * self.sample_rate / int(metadata["sample_rate"]))

    def expected_chunks(self, metadata: Mapping[str, Any]) -> int:
        """Number of container chunks a stream with this metadata has."""
        return math.ceil(frames_for(self.model_samples(metadata), self.hop_length) / int(metadata["chunk_frames"]))

    def _chunk_payloads(self, blocks: Iterator[Tensor], model_samples: int, q: int,
                        coder: TokenPrior | CircuitTokenPriorModule) -> Iterator[bytes]:
        """Model-rate blocks ``[C, n]`` (any sizes, ``model_samples`` in all) -> chunk payloads.

        Keeps only one chunk plus the encoder margins in memory. Each chunk holds ``chunk_frames``
        frames of every channel: per channel a ``u32`` length and the bytes of ``coder`` (the
        selected entropy model, fixed when the stream starts: its id is in the header).
        """
        hop, margin, size = self.hop_length, self.encoder_margin, self.chunk_frames
        frames = frames_for(model_samples, hop)
        buffer: Tensor | None = None
        buffer_start = 0  # model-rate sample index of buffer[:, 0]
        received = 0
        exhausted = False
        for start in range(0, frames, size):
            stop = min(frames, start + size)
            need = min(frames, stop + margin) * hop
            while not exhausted and buffer_start + (0 if buffer is None else buffer.shape[1]) < need:
                block = next(blocks, None)
                if block is None:
                    exhausted = True
                    break
                block = block.float()
                received += block.shape[1]
                buffer = block if buffer is None else torch.cat([buffer, block], dim=1)
            if buffer is None:
                raise MediaError("audio contains no samples")
            if exhausted and received != model_samples:
                raise MediaError(f"audio ended after {received} samples, expected {model_samples}")
            have = buffer_start + buffer.shape[1]
            if have < need:  # end of signal: zero padding up to a whole frame, as offline
                buffer = F.pad(buffer, (0, need - have))
            lo = max(0, start - margin)
            window = buffer[:, lo * hop - buffer_start: need - buffer_start].unsqueeze(1)
            codes = self._tokens(window, q)[..., start - lo: stop - lo]
            strings = coder.compress(codes)
            yield b"".join(struct.pack("<I", len(s)) + s for s in strings)
            keep_from = max(0, stop - margin) * hop
            buffer = buffer[:, keep_from - buffer_start:]
            buffer_start = keep_from

    @torch.no_grad()
    def compress(self, wav: Tensor, sample_rate: int | None = None, num_codebooks: int | None = None
                 ) -> tuple[Metadata, Iterator[bytes]]:
        """Waveform ``[C, T]`` at ``sample_rate`` -> (metadata, lazily produced chunk payloads).

        Each channel is coded independently with the mono model.
        """
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise MediaError(f"expected non-empty audio [channels, samples], got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise MediaError("audio contains NaN or infinite samples")
        in_rate = int(sample_rate or self.sample_rate)
        q = self._check_codebooks(num_codebooks)
        metadata = self._metadata(in_rate, wav.shape[0], wav.shape[1], q)
        model_wav = resample(wav.float(), in_rate, self.sample_rate)
        return metadata, self._chunk_payloads(iter([model_wav]), self.model_samples(metadata), q, self.token_coder)

    def compress_file(self, path: Any, bitrate: float | None = None, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Compress an audio file of any length with bounded memory (blockwise read and resampling)."""
        from neuralcodec.media.audio import audio_info, iter_audio_blocks

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise UsageError(f"option(s) not supported by the audio codec: {', '.join('--' + k.replace('_', '-') for k in unsupported)}")
        q = self.bitrate_to_codebooks(bitrate) if bitrate is not None else self.default_codebooks
        info = audio_info(path)
        if info.num_frames <= 0:
            raise MediaError(f"{path}: contains no audio samples")
        if info.channels > 64:
            raise MediaError(f"{path}: {info.channels} channels; at most 64 are supported")
        metadata = self._metadata(info.sample_rate, info.channels, info.num_frames, q)
        blocks = iter_audio_blocks(path, self.chunk_frames * self.hop_length, sample_rate=self.sample_rate)
        return metadata, self._chunk_payloads(iter(blocks), self.model_samples(metadata), q, self.token_coder)

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           **options: Any) -> None:
        """Decode to a .wav/.flac/.ogg file at the original rate and length, streaming, atomically."""
        import soundfile as sf

        from neuralcodec.fileio import atomic_path
        from neuralcodec.media.audio import StreamingResampler

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise UsageError(f"option(s) not supported by the audio codec: {', '.join('--' + k for k in unsupported)}")
        formats = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
        suffix = Path(path).suffix.lower()
        if suffix not in formats:
            raise MediaError(f"cannot write audio to {path}: use a .wav, .flac or .ogg name")
        rate, samples = int(metadata["sample_rate"]), int(metadata["num_samples"])
        channels = int(metadata["channels"])
        if not (1 <= rate <= 1_000_000 and samples >= 1):
            raise BitstreamError("audio stream metadata out of range")
        resampler = StreamingResampler(self.sample_rate, rate) if rate != self.sample_rate else None
        model_left = self.model_samples(metadata)
        written = 0
        with atomic_path(path, suffix=suffix) as tmp:
            fmt, subtype = formats[suffix]
            with sf.SoundFile(str(tmp), "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as out:
                def emit(piece: Tensor) -> None:
                    nonlocal written
                    piece = piece[:, : samples - written].clamp(-1.0, 1.0)
                    if piece.shape[1]:
                        out.write(piece.T.double().numpy())
                        written += piece.shape[1]

                for piece in self.decompress_stream(metadata, chunks):
                    piece = piece[:, :model_left]
                    model_left -= piece.shape[1]
                    emit(resampler.push(piece) if resampler is not None else piece)
                if resampler is not None:
                    emit(resampler.flush())
                if written < samples:
                    emit(torch.zeros(channels, samples - written))

    def _parse_chunk(self, payload: bytes, channels: int, num_frames: int, q: int, index: int,
                     coder: TokenPrior | CircuitTokenPriorModule | None = None) -> Tensor:
        coder = self.token_coder if coder is None else coder
        strings, offset = [], 0
        for c in range(channels):
            if offset + 4 > len(payload):
                raise BitstreamError(f"chunk {index}: truncated channel {c} length field")
            (n,) = struct.unpack_from("<I", payload, offset)
            offset += 4
            if offset + n > len(payload):
                raise BitstreamError(f"chunk {index}: channel {c} claims {n} bytes, {len(payload) - offset} present")
            strings.append(payload[offset: offset + n])
            offset += n
        if offset != len(payload):
            raise BitstreamError(f"chunk {index}: {len(payload) - offset} unexpected trailing bytes")
        try:
            codes = coder.decompress(strings, num_frames, num_codebooks=q)
        except BitstreamError:
            raise
        except Exception as exc:
            raise BitstreamError(f"chunk {index}: token stream does not decode ({exc})") from exc
        return codes

    @torch.no_grad()
    def decompress_stream(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> Iterator[Tensor]:
        """Yield decoded model-rate audio ``[C, n]`` piece by piece (one piece per chunk, bounded memory)."""
        try:
            channels = int(metadata["channels"])
            q = int(metadata["num_codebooks"])
            chunk_frames = int(metadata["chunk_frames"])
            rate, samples = int(metadata["sample_rate"]), int(metadata["num_samples"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"audio stream metadata lacks or garbles {exc.args[0]!r}") from exc
        if not (1 <= channels <= 64 and q in self.codebook_settings and 1 <= chunk_frames <= 1 << 20
                and 1 <= rate <= 1_000_000 and 1 <= samples <= 1 << 40):
            raise BitstreamError("audio stream metadata out of range")
        model_samples = self.model_samples(metadata)
        frames = frames_for(model_samples, self.hop_length)
        expected = math.ceil(frames / chunk_frames)
        hop, margin = self.hop_length, self.decoder_margin
        coder = self.token_coder
        history: list[Tensor] = []  # codes of recent chunks, [C, q, n] each
        history_start = 0  # frame index of history[0]
        cycles = None  # harmonic excitation's phase at frame history_start (models with one), [C]
        emitted = 0  # frames already output
        count = 0
        iterator = iter(chunks)

        def advance(phase: Tensor | None, codes: Tensor) -> Tensor | None:
            step = self.excitation_cycles(codes)
            return None if step is None else torch.frac(step if phase is None else phase + step)

        def render(upto: int, final: bool) -> Tensor:
            nonlocal history, history_start, emitted, cycles
            codes = torch.cat(history, dim=-1)
            end_frame = history_start + codes.shape[-1]
            stop = end_frame if final else upto
            lo = max(history_start, emitted - margin)
            window = codes[..., lo - history_start:]
            audio = self.decode(window, phase0=advance(cycles, codes[..., : lo - history_start]))[:, 0]
            out = audio[:, (emitted - lo) * hop: (stop - lo) * hop]
            emitted = stop
            # drop history no longer needed as left context
            keep_from = max(history_start, emitted - margin)
            cycles = advance(cycles, codes[..., : keep_from - history_start])
            trimmed = codes[..., keep_from - history_start:]
            history, history_start = [trimmed], keep_from
            return out

        for index in range(expected):
            try:
                payload = next(iterator)
            except StopIteration:
                raise BitstreamError(f"stream ends after {index} of {expected} audio chunks") from None
            n = min(chunk_frames, frames - index * chunk_frames)
            history.append(self._parse_chunk(payload, channels, n, q, index, coder))
            count += n
            # frames up to (count - margin) have full right context now
            if count - margin > emitted and index < expected - 1:
                yield render(count - margin, final=False)
        if next(iterator, None) is not None:
            raise BitstreamError(f"stream has more than the {expected} chunks its header announces")
        yield render(frames, final=True)

    @torch.no_grad()
    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> tuple[Tensor, int]:
        """Chunk payloads -> ``([C, num_samples] waveform at the original rate, original rate)``."""
        pieces = list(self.decompress_stream(metadata, chunks))
        audio = torch.cat(pieces, dim=-1)[:, : self.model_samples(metadata)]
        rate, samples = int(metadata["sample_rate"]), int(metadata["num_samples"])
        if rate != self.sample_rate:
            audio = resample(audio, self.sample_rate, rate)
        audio = audio[:, :samples]
        if audio.shape[-1] < samples:
            audio = F.pad(audio, (0, samples - audio.shape[-1]))
        return audio, rate
