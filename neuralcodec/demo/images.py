"""Image comparison items: an input coded by the image model at several qualities, and JPEG at the same size."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: at most this many quality levels of the model are shown
MAX_QUALITIES = 4


@dataclass
class ImageVariant:
    key: str
    role: str  # "ours" or "anchor"
    image: str = ""  # site-relative PNG of the decoded image
    bpp: float = math.nan  # actual: compressed file bits / pixels
    psnr: float = math.nan
    note: str = ""


@dataclass
class ImageItem:
    model: str
    name: str
    width: int
    height: int
    original: str
    variants: list[ImageVariant] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pick_qualities(num_qualities: int, limit: int = MAX_QUALITIES) -> list[int]:
    """Up to ``limit`` evenly spread quality levels in ``1..num_qualities`` (both ends included)."""
    if num_qualities <= limit:
        return list(range(1, num_qualities + 1))
    return sorted({round(1 + i * (num_qualities - 1) / (limit - 1)) for i in range(limit)})


def build_image_item(codec, model: str, source: Path, name: str, site: Path) -> ImageItem:
    """Code ``source`` at a few qualities and JPEG at each resulting size; write PNGs under ``site``."""
    from neuralcodec.cli.coding import decode_to_file, encode_to_file
    from neuralcodec.eval.image_anchors import classic_codec, match_bpp, psnr, to_uint8
    from neuralcodec.media.image import load_image, save_image

    import torch

    folder = site / "images" / model / name
    folder.mkdir(parents=True, exist_ok=True)
    image = load_image(source, mode="auto")
    original = folder / "original.png"
    save_image(original, image)
    ref = to_uint8(load_image(original, mode="auto"))
    height, width = ref.shape[:2]
    item = ImageItem(model, name, width, height, original.relative_to(site).as_posix())
    jpeg = classic_codec(ref, "JPEG")
    with tempfile.TemporaryDirectory(prefix="nc-demo-img-") as tmp:
        for q in pick_qualities(int(getattr(codec, "num_qualities", 1))):
            bin_path, out = Path(tmp) / f"q{q}.bin", folder / f"ours_q{q}.png"
            encode_to_file(codec, original, bin_path, quality=q)
            decode_to_file(codec, bin_path, out)
            bits = bin_path.stat().st_size * 8
            decoded = to_uint8(load_image(out, mode="auto"))
            item.variants.append(ImageVariant(f"{model} q{q}", "ours", out.relative_to(site).as_posix(),
                                              bits / (width * height), psnr(ref, decoded)))
            jq = match_bpp(jpeg, 1, 100, bits)
            jbits, jdec = jpeg(jq)
            jpath = folder / f"jpeg_q{q}.png"
            save_image(jpath, torch.from_numpy(jdec.copy()).permute(2, 0, 1).float() / 255)
            item.variants.append(ImageVariant(f"JPEG (quality {jq}) for {model} q{q}", "anchor",
                                              jpath.relative_to(site).as_posix(), jbits / (width * height),
                                              psnr(ref, jdec)))
    return item
