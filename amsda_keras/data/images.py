"""Reads image files into RGB tensors inside a `tf.data` pipeline.

`load_image` relies on `tf.io.decode_image` (TensorFlow 2.21), which sniffs the format from
the bytes and reads JPEG (RGB, grayscale, CMYK), PNG (any colour type; 16-bit is scaled to
8-bit), GIF (first frame), still WebP, and uncompressed 24/32-bit or 8-bit grayscale BMP.
It cannot read TIFF and the other formats Pillow knows, returns the palette indices of a
palette BMP instead of its colours, and corrupts memory (the process aborts) on an animated
WebP. `unsupported_reason` spots these on an image opened with Pillow, so that
`validation.check_samples` rejects them before TensorFlow ever sees them.
"""

import tensorflow as tf

# Pillow's names for the formats `load_image` decodes ("MPO" is a camera JPEG).
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP")


def load_image(path):
    """Reads and decodes one image file to RGB (see `decode_image`).

    Args:
        path: string scalar tensor (or `str`), the image file.

    Returns:
        `uint8` tensor of shape `[height, width, 3]`.
    """
    return decode_image(tf.io.read_file(path))


def decode_image(contents):
    """Decodes one encoded image (the bytes of a file) to RGB.

    A TensorFlow graph function, so it can be mapped over a `tf.data.Dataset` or run inside an
    exported model. Alpha is dropped (not composited), as Pillow's `convert("RGB")` does;
    grayscale is repeated into three channels.

    Args:
        contents: string scalar tensor, the encoded image.

    Returns:
        `uint8` tensor of shape `[height, width, 3]`.
    """
    # `channels=0` because TensorFlow's WebP decoder refuses any channel count but the
    # file's own (3 or 4); the channels are fixed below instead.
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)
    image = tf.cond(
        tf.shape(image)[-1] < 3,
        lambda: tf.tile(image[..., :1], [1, 1, 3]),
        lambda: image[..., :3],
    )
    image.set_shape([None, None, 3])
    return image


def unsupported_reason(image):
    """Says why `load_image` cannot decode an image, or returns `None` when it can.

    Args:
        image: a `PIL.Image.Image` just opened from a file (not yet loaded).

    Returns:
        A short reason starting with "unsupported image format", or `None`.
    """
    if image.format not in DECODABLE_FORMATS:
        return f"unsupported image format: {image.format} (use JPEG, PNG, GIF, WebP or BMP)"
    if image.format == "WEBP" and _is_animated_webp(_header(image)):
        return "unsupported image format: animated WebP"
    if image.format == "BMP" and not _is_plain_bmp(_header(image), image.mode):
        return "unsupported image format: BMP that is not uncompressed 24/32-bit or 8-bit gray"
    return None


def _header(image, size=34):
    """The first `size` bytes of an opened image's file, leaving Pillow's position alone."""
    position = image.fp.tell()
    image.fp.seek(0)
    header = image.fp.read(size)
    image.fp.seek(position)
    return header


def _is_animated_webp(header):
    # The VP8X animation flag rather than the frame count: a one-frame animation crashes too.
    return header[12:16] == b"VP8X" and bool(header[20] & 0x02)


def _is_plain_bmp(header, mode):
    """True for the BMP layouts TensorFlow reads correctly."""
    header_size = int.from_bytes(header[14:18], "little")
    bits = int.from_bytes(header[28:30], "little")
    compression = int.from_bytes(header[30:34], "little")
    # TensorFlow ignores the palette, so 8 bits only work when Pillow found the identity
    # gray palette (mode "L").
    depth_ok = bits in (24, 32) or (bits == 8 and mode == "L")
    return header_size >= 40 and compression == 0 and depth_ok
