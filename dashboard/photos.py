"""Work-order photos: what a phone uploads is checked to be the image it says it is.

Any bytes used to be stored under the type the browser declared, and served back under it
without `nosniff` (issue 15). Now a photo is kept only if its first bytes are a JPEG, PNG
or WebP signature, Pillow reads the same format from it and verifies it, and it is at
most `MAX_PHOTO_BYTES` and `MAX_PIXELS`; it is stored under the type found, not the one
declared. Serving re-checks the stored bytes, so a row kept before these checks is sent
as a download, never as something a browser would render.
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError

from dashboard.context import lang
from dashboard.i18n import t
from twin.errors import TwinError
from twin.store.operations import Photo

#: A phone's photo; base64 makes it a third larger in the request (Settings.max_body_bytes).
MAX_PHOTO_BYTES = 5 * 1024 * 1024
#: Width × height: a 48-megapixel phone camera fits; a decompression bomb does not.
MAX_PIXELS = 64_000_000
#: The formats kept, by Pillow's name, as the type they are stored and served under.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
PHOTO_TYPES = frozenset(FORMATS.values())
#: Served for stored bytes that are not one of those images.
NOT_AN_IMAGE = "application/octet-stream"


class NotAPhoto(TwinError):
    """An upload that is not a JPEG, PNG or WebP image of an acceptable size."""


def decode_photo(contents: object) -> Photo | None:
    """A dcc.Upload data URL ("data:image/jpeg;base64,...") as a checked Photo, or None."""
    if not contents:
        return None
    if not isinstance(contents, str):
        raise NotAPhoto(_words("photo.not_image"))
    header, _, payload = contents.partition(",")
    declared = header.removeprefix("data:").split(";")[0]
    if declared not in PHOTO_TYPES or not header.endswith(";base64"):
        raise NotAPhoto(_words("photo.not_image"))
    if len(payload) > (MAX_PHOTO_BYTES + 2) // 3 * 4:  # before decoding it
        raise NotAPhoto(_words("photo.too_big", mb=MAX_PHOTO_BYTES // 2**20))
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as e:
        raise NotAPhoto(_words("photo.not_image")) from e
    return checked_photo(data)


def checked_photo(data: bytes) -> Photo:
    """`data` as a Photo of the type it really is; NotAPhoto if it is no acceptable image."""
    if len(data) > MAX_PHOTO_BYTES:
        raise NotAPhoto(_words("photo.too_big", mb=MAX_PHOTO_BYTES // 2**20))
    found = sniff(data)
    if found is None:
        raise NotAPhoto(_words("photo.not_image"))
    try:
        with Image.open(io.BytesIO(data)) as image:
            if FORMATS.get(image.format or "") != found:
                raise NotAPhoto(_words("photo.not_image"))
            if image.width * image.height > MAX_PIXELS:
                raise NotAPhoto(_words("photo.too_big", mb=MAX_PHOTO_BYTES // 2**20))
            image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as e:  # what Pillow raises for a broken or hostile file
        raise NotAPhoto(_words("photo.not_image")) from e
    return Photo(content_type=found, data=data)


def sniff(data: bytes) -> str | None:
    """The image type `data` starts like (its magic bytes), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def served_type(photo: Photo) -> str:
    """The type to serve stored bytes under: their own image type when it is the one stored
    (and one we keep), else a download."""
    found = sniff(photo.data)
    return found if found is not None and found == photo.content_type else NOT_AN_IMAGE


def _words(key: str, **values: object) -> str:
    return t(key, lang()).format(**values)
