"""Conditional video codec: decode == eval forward, estimated vs actual bits, determinism, refresh."""

from __future__ import annotations

import pytest
import torch
from conditional_helpers import make_codec, moving_clip

from neuralcodec.codecs.image.gain import interpolate_lambdas
from neuralcodec.codecs.registry import load_codec, save_codec
from neuralcodec.codecs.video.conditional import INTER, INTRA
from neuralcodec.entropy.checkerboard import checkerboard
from neuralcodec.errors import BitstreamError, MediaError, NeuralCodecError


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: extra threads only add synchronisation cost (and contention on busy machines)."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def codec():
    return make_codec()


@pytest.fixture(scope="module")
def dev_clip():
    """64x64 x 4 frames cropped from a development video (or a synthetic clip without the data)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "video" / "cisco_vt2people_320x192_12fps_9f.y4m"
    if not path.is_file():
        return moving_clip(4, 64, 64)
    from neuralcodec.train.data.video import read_frames

    return read_frames(path, 0, 4)[:, :, 64:128, 128:192].float() / 255.0


@pytest.mark.parametrize("frame_types", ["fixed", "adaptive"])
@pytest.mark.parametrize("gop", [3, 100])
def test_decode_equals_eval_forward(codec, dev_clip, gop, frame_types):
    """Every decoded frame is the eval-mode forward reconstruction (intra and P-frames, refresh included),
    for the fixed GOP and for the frame types an adaptive encoder chose (read from the chunks)."""
    metadata, chunks = codec.compress(dev_clip, quality=2, gop=gop, frame_types=frame_types)
    chunks = list(chunks)
    types = [c[0] == INTRA for c in chunks]
    with torch.no_grad():
        out = codec(dev_clip[None], 2.0, gop=gop, intra=types)
    decoded = codec.decompress(metadata, chunks)
    if frame_types == "fixed":
        assert out.intra == types == [t % gop == 0 for t in range(4)]
    assert out.intra == types and types[0]
    assert decoded.shape == dev_clip.shape and len(chunks) == 4
    assert torch.equal(decoded, out.x_hat[0].clamp(0, 1))
    # estimated (exact table) bits vs actual payload: per stream at most the ANS flush and the frame header
    actual = torch.tensor([8.0 * len(c) for c in chunks])
    overhead = torch.tensor([8.0 * (5 + 8 * 2) if i else 8.0 * (1 + 8) for i in out.intra])
    est = out.bits[0]
    assert torch.all(actual >= est - 1) and torch.all(actual <= est + overhead + 32)
    assert abs(actual.sum() - est.sum()) / actual.sum() < 0.1


def _cost(codec, chunk: bytes, decoded: torch.Tensor, frame: torch.Tensor, quality: float) -> float:
    weight = float(interpolate_lambdas(codec.lambdas, torch.tensor([quality]))[0]) * 255.0**2
    return 8 * len(chunk) / frame[0].numel() + weight * float(torch.mean((decoded - frame) ** 2))


@pytest.mark.parametrize("clip", ["dev", "cut"])
def test_adaptive_frame_types_keep_the_cheaper_frame(codec, dev_clip, clip):
    """Frame 1 of an adaptive stream is whichever of its P-frame and its intra frame has the lower
    rate-distortion cost (bpp + lambda 255^2 MSE of the decoded frame), byte for byte; a fixed GOP is
    never broken by an intra frame."""
    if clip == "cut":  # a scene cut: the second frame has nothing to do with the first
        video = torch.cat([dev_clip[:1], moving_clip(3, 64, 64, seed=5)])
    else:
        video = dev_clip
    meta_p, as_p = codec.compress(video, quality=2, gop=100, frame_types="fixed")
    meta_i, as_i = codec.compress(video, quality=2, gop=1, frame_types="fixed")
    as_p, as_i = list(as_p), list(as_i)
    assert [c[0] for c in as_p] == [INTRA, INTER, INTER, INTER] and all(c[0] == INTRA for c in as_i)
    dec_p, dec_i = codec.decompress(meta_p, as_p), codec.decompress(meta_i, as_i)
    cost_p = _cost(codec, as_p[1], dec_p[1], video[1], 2.0)
    cost_i = _cost(codec, as_i[1], dec_i[1], video[1], 2.0)
    _, adaptive = codec.compress(video, quality=2, gop=100)
    adaptive = list(adaptive)
    assert adaptive[1] == (as_i[1] if cost_i < cost_p else as_p[1])
    assert adaptive[0] == as_p[0] == as_i[0]


def test_adaptive_frame_types_keep_p_frames_when_intra_costs_more(codec, dev_clip, monkeypatch):
    """(The untrained test model's P-frames always lose to its intra frames.) With intra frames made
    expensive, the adaptive encoder keeps every P-frame: it is the same stream as a fixed GOP."""
    encode_intra = codec._encode_intra

    def bloated(x, q):
        payload, ref = encode_intra(x, q)
        return payload + bytes(1 << 20), ref  # ~2,000 bpp more: far beyond any distortion gain

    monkeypatch.setattr(codec, "_encode_intra", bloated)
    _, adaptive = codec.compress(dev_clip, quality=2, gop=100)
    _, fixed = codec.compress(dev_clip, quality=2, gop=100, frame_types="fixed")
    assert list(adaptive) == list(fixed)


def test_quality_orders_rate(codec):
    clip = moving_clip(3, 48, 64)
    sizes = []
    for q in (1, 2, 3):
        _, chunks = codec.compress(clip, quality=q)
        sizes.append(sum(len(c) for c in chunks))
    assert sizes[0] < sizes[-1]


def test_entropy_indices_are_bit_exact_across_threads_and_batches(codec):
    """STEM scale indices come from integer arithmetic: thread count and batch split cannot move them."""
    prior = codec.prior
    torch.manual_seed(1)
    z_hat = torch.round(torch.randn(2, 16, 2, 3) * 3)
    prev = torch.round(torch.randn(2, 24, 8, 12) * 4)
    anchors = torch.round(torch.randn(2, 24, 8, 12) * 4) * checkerboard(8, 12).float()
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        feat = prior._hyper_fixed(z_hat)
        results.append(prior._indexes(feat, prev, anchors))
        results.append(torch.cat([prior._indexes(prior._hyper_fixed(z_hat[i:i + 1]), prev[i:i + 1], anchors[i:i + 1])
                                  for i in range(2)]))
    torch.set_num_threads(1)
    assert all(torch.equal(results[0], r) for r in results[1:])
    assert results[0].dtype == torch.int64 and results[0].min() >= 0
    assert results[0].max() < prior.gaussian.grid.num_scales


def test_exported_model_codes_identically(codec, tmp_path):
    """A saved + reloaded (fp16 weights) model has the same tables and decodes its own streams exactly."""
    path = save_codec(codec, tmp_path / "v.safetensors", float_dtype=torch.float16)
    loaded = load_codec(path)
    for name, buf in codec.prior.named_buffers():  # integer tables and weights are stored exactly
        if not buf.is_floating_point():
            assert torch.equal(buf, dict(loaded.prior.named_buffers())[name]), name
    clip = moving_clip(3, 48, 64)
    metadata, chunks = loaded.compress(clip, quality=3)
    chunks = list(chunks)
    with torch.no_grad():
        ref = loaded(clip[None], 3.0, intra=[c[0] == INTRA for c in chunks]).x_hat[0].clamp(0, 1)
    assert torch.equal(load_codec(path).decompress(metadata, chunks), ref)


def test_refresh_schedule_and_effect(codec):
    assert [codec.is_refresh(p) for p in range(1, 7)] == [False, False, True, False, True, False]
    assert not any(codec.is_refresh(p, 0) for p in range(1, 20))
    clip = moving_clip(4, 48, 64)
    with torch.no_grad():
        with_refresh = codec(clip[None], 2.0, gop=10).x_hat
        without = codec(clip[None], 2.0, gop=10, refresh_period=0).x_hat
    assert torch.equal(with_refresh[:, :3], without[:, :3]) and not torch.equal(with_refresh[:, 3], without[:, 3])


def test_training_forward_has_gradients_through_the_chain():
    codec = make_codec().train()
    clip = moving_clip(3, 64, 64)[None].repeat(2, 1, 1, 1, 1)
    out = codec(clip, torch.tensor([1.0, 2.5]))
    assert out.x_hat.shape == clip.shape and out.bits.shape == (2, 3)
    out.x_hat[:, 2].mean().backward()
    assert codec.context.refine[0].weight.grad is not None and codec.intra.g_a[0].weight.grad is not None


def test_bad_options_and_streams(codec):
    clip = moving_clip(2, 32, 32)
    with pytest.raises(NeuralCodecError, match="--quality"):
        codec.compress(clip, quality=9)
    with pytest.raises(NeuralCodecError, match="--gop"):
        codec.compress(clip, gop=0)
    with pytest.raises(NeuralCodecError, match="not supported"):
        codec.compress(clip, bitrate=6.0)
    with pytest.raises(NeuralCodecError, match="--frame-types"):
        codec.compress(clip, frame_types="b-frames")
    with pytest.raises(MediaError):
        codec.compress(torch.rand(2, 1, 32, 32))
    metadata, chunks = codec.compress(clip, frame_types="fixed")
    chunks = list(chunks)
    with pytest.raises(BitstreamError, match="declares"):
        codec.decompress(metadata, chunks[:1])
    with pytest.raises(BitstreamError):
        codec.decompress(metadata, [chunks[0], b"\x07" + chunks[1][1:]])
    with pytest.raises(BitstreamError, match="without a preceding intra"):
        codec.decompress(metadata, [chunks[1], chunks[1]])
    with pytest.raises(BitstreamError, match="quality"):
        codec.decompress({**metadata, "quality": 7}, chunks)
