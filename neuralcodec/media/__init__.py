"""Media I/O: audio files, images and y4m video <-> float tensors.

Readers validate their input and raise :class:`~neuralcodec.errors.MediaError` with the file
name and the problem; writers go through :mod:`neuralcodec.fileio`, so no partial file is ever
left at the destination. Tensor conventions: audio ``[C, T]`` float32, images ``[C, H, W]``
float32 in [0, 1], video frames as 8-bit :class:`YUVFrame` planes (see :mod:`.video`).
"""

from neuralcodec.media.audio import (
    DEFAULT_MAX_DURATION_S,
    AudioInfo,
    ChannelPolicy,
    StreamingResampler,
    apply_channel_policy,
    audio_info,
    iter_audio_blocks,
    load_audio,
    resample,
    save_audio,
)
from neuralcodec.media.image import ImageMode, image_to_tensor, load_image, save_image, tensor_to_image
from neuralcodec.media.video import (
    Chroma,
    Y4MHeader,
    Y4MReader,
    Y4MWriter,
    YUVFrame,
    parse_y4m_header,
    rgb_to_yuv,
    rgb_to_yuv420_tensor,
    rgb_to_yuv444_tensor,
    tensors_to_yuv_frame,
    yuv420_to_rgb_tensor,
    yuv444_to_rgb_tensor,
    yuv_frame_to_tensors,
    yuv_to_rgb,
)

__all__ = [
    # audio
    "AudioInfo",
    "ChannelPolicy",
    "DEFAULT_MAX_DURATION_S",
    "StreamingResampler",
    "apply_channel_policy",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "resample",
    "save_audio",
    # images
    "ImageMode",
    "image_to_tensor",
    "load_image",
    "save_image",
    "tensor_to_image",
    # video
    "Chroma",
    "Y4MHeader",
    "Y4MReader",
    "Y4MWriter",
    "YUVFrame",
    "parse_y4m_header",
    "rgb_to_yuv",
    "rgb_to_yuv420_tensor",
    "rgb_to_yuv444_tensor",
    "tensors_to_yuv_frame",
    "yuv420_to_rgb_tensor",
    "yuv444_to_rgb_tensor",
    "yuv_frame_to_tensors",
    "yuv_to_rgb",
]
