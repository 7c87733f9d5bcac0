"""The shard sample format: one clip = one WebDataset sample (see shards/README.md).

Members of sample ``<key>`` (key = ``<video id>_<onset sample>``; WebDataset splits a member name at
its first dot, so keys never contain one):

    <key>.flac            audio (T,) mono at cfg.audio.sample_rate, FLAC 24-bit, lossless for the stored values
    <key>.modes.npy       float32 (3, D): rows f (Hz), p (dB), lambda (dB/s) per bin (physdiff.physics)
    <key>.json            metadata (material, action, reaction, onset, video id, fps, split, sources, ...)
    <key>.frames.mjpeg    the 22 frames onset-11 .. onset+10 (frame 11 = the onset frame): 22 RGB JPEG
                          files back to back (Motion JPEG; ``ffplay -f mjpeg`` plays it), their byte
                          lengths in ``meta["frame_bytes"]``

One member for the frames instead of 22 keeps a sample at 4 tar members (USTAR headers, no PAX), so a
reader that skips frames parses 4 headers per clip, not 25: tar header parsing dominated reading.

Audio is stored as 24-bit integers with a per-clip gain (``meta["audio_gain"]``, 1.0 unless the
resampled clip peaks above full scale), so ``encode_audio`` -> ``decode_audio`` returns exactly
``quantize_audio(x)``; the modes are estimated from that quantised clip, so they describe the
stored audio. Nothing is pickled: arrays are ``.npy`` read with ``allow_pickle=False``.

Frames are written with PIL (libjpeg-turbo, 4:2:0) and decoded with ``torchvision.io.decode_jpeg``
(libjpeg-turbo on the CPU, nvjpeg in one batched call on a GPU): ``decode_frame_batch`` gives the
reader's (B, F, 3, H, W) uint8 with channels-last storage. On the shards' frames the CPU decode is
bit-identical to PIL's (tests/data/test_reader.py states the measured difference).
"""

from __future__ import annotations

import io
import json
import math
from itertools import accumulate
from typing import Any, Sequence

import numpy as np
import torch

from physdiff.errors import DataError

AUDIO_EXT = "flac"
MODES_EXT = "modes.npy"
META_EXT = "json"
FRAMES_EXT = "frames.mjpeg"
_FULL = 2**23  # 24-bit full scale


def is_frame_member(name: str) -> bool:
    return name.endswith("." + FRAMES_EXT)


def audio_gain(x: np.ndarray) -> float:
    """1.0, or the peak when the clip exceeds full scale (resampling overshoot), so 24-bit PCM never clips."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return peak if peak > 1.0 else 1.0


def quantize_audio(x: np.ndarray, gain: float) -> np.ndarray:
    """The exact float32 values a FLAC round trip returns: (T,) -> (T,)."""
    q = np.clip(np.round(x / gain * _FULL), -_FULL, _FULL - 1).astype(np.int32)
    return (q.astype(np.float64) / _FULL * gain).astype(np.float32)


def encode_audio(x: np.ndarray, sample_rate: int, gain: float) -> bytes:
    import soundfile as sf

    q = np.clip(np.round(x / gain * _FULL), -_FULL, _FULL - 1).astype(np.int32)  # (T,)
    buf = io.BytesIO()
    # int32 input: libsndfile keeps the top 24 bits for PCM_24, so shifting by 8 is exact.
    sf.write(buf, q << 8, sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def decode_audio(data: bytes, gain: float = 1.0) -> tuple[np.ndarray, int]:
    """FLAC bytes -> (float32 (T,), sample rate)."""
    import soundfile as sf

    x, sr = sf.read(io.BytesIO(data), dtype="int32", always_2d=False)  # (T,)
    return ((x >> 8).astype(np.float64) / _FULL * gain).astype(np.float32), int(sr)


def encode_npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_frames(frames: list[np.ndarray], quality: int) -> tuple[bytes, list[int]]:
    """F x (H, W, 3) uint8 -> (concatenated JPEG bytes, byte length of each JPEG)."""
    parts = [encode_jpeg(f, quality) for f in frames]
    return b"".join(parts), [len(p) for p in parts]


def frame_jpegs(data: bytes, lengths: Sequence[int]) -> list[torch.Tensor]:
    """Concatenated JPEGs + their lengths -> F 1-D uint8 tensors (views of one copy of ``data``).

    The input format of ``torchvision.io.decode_jpeg``. Raises ValueError when the lengths do not
    tile the member exactly (a frames member that does not match its metadata is corrupt).
    """
    if sum(lengths) != len(data) or any(int(n) <= 0 for n in lengths):
        raise ValueError(f"frame lengths {list(lengths)[:3]}... sum to {sum(lengths)} bytes, member holds {len(data)}")
    # bytearray: torch.frombuffer wants a writable buffer (decode_jpeg never writes to it); one copy
    # of ~190 kB per clip, ~1 % of the decode.
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)  # (sum(lengths),)
    ends = list(accumulate(int(n) for n in lengths))
    return [buf[e - int(n) : e] for e, n in zip(ends, lengths)]


def _decode_jpegs(jpegs: list[torch.Tensor], device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """torchvision's libjpeg-turbo (CPU) or nvjpeg (CUDA, one batched call) -> F x (3, H, W) uint8."""
    from torchvision.io import ImageReadMode, decode_jpeg as tv_decode_jpeg

    out = tv_decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)  # RGB: grey JPEGs expand, as PIL's convert
    return out if isinstance(out, list) else [out]


def shared_uint8(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised uint8 tensor, in shared memory when inside a DataLoader worker.

    A worker's batch travels to the main process through shared memory; a tensor already there is
    sent as a handle, while any other is first copied there (3.3 MB per 224 px clip). This is what
    torch's ``default_collate`` does for the same reason.
    """
    from torch.utils.data import get_worker_info

    n = math.prod(shape)
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if get_worker_info() is None or new_shared is None:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.empty(0, dtype=torch.uint8).set_(new_shared(n)).view(shape)


def decoded_frames(data: bytes, lengths: Sequence[int]) -> list[torch.Tensor]:
    """One clip's frames member -> F x (H, W, 3) uint8, the decoder's own buffers (no copy yet).

    Decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo) in one list call. Raises ValueError
    (layout) or RuntimeError (the decoder: not a JPEG, truncated) for a corrupt member.
    """
    return _check_hwc(_decode_jpegs(frame_jpegs(data, lengths)))


def _check_hwc(imgs: list[torch.Tensor]) -> list[torch.Tensor]:
    """F x (3, H, W) decoder outputs, one size -> F x (H, W, 3) views (the CPU decoder's own layout)."""
    shape = imgs[0].shape
    if shape[0] != 3 or any(im.shape != shape for im in imgs):
        raise ValueError(f"frames differ in size or channels: {sorted({tuple(im.shape) for im in imgs})}")
    return [im.permute(1, 2, 0) for im in imgs]  # F x (H, W, 3): contiguous on the CPU, as decoded


def stack_frames(hwc: list[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    """F x (H, W, 3) -> (F, H, W, 3), written into ``out`` when given (e.g. one clip's row of a
    shared-memory batch buffer: the only copy a decoded frame makes on its way to the batch)."""
    if out is None:
        return torch.stack(hwc)  # (F, H, W, 3)
    if tuple(out.shape) != (len(hwc), *hwc[0].shape):
        raise ValueError(f"clip frames are {len(hwc)} x {tuple(hwc[0].shape)}, the batch holds {tuple(out.shape)}")
    return torch.stack(hwc, out=out)  # (F, H, W, 3)


def decode_clip_frames(data: bytes, lengths: Sequence[int], out: torch.Tensor | None = None) -> torch.Tensor:
    """One clip's frames member -> (F, H, W, 3) uint8 (into ``out`` when given)."""
    return stack_frames(decoded_frames(data, lengths), out)


def frames_chw(frames_hwc: torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) -> (..., 3, H, W): a view, no copy (strides stay channels-last).

    The reader hands frames out in the (B, T, 3, H, W) axis order with the decoder's interleaved-RGB
    storage: ``frames.flatten(0, 1)`` is then exactly ``torch.channels_last``, which the video encoder
    wants, while a planar (contiguous CHW) copy would cost about half as much CPU again as the JPEG
    decode itself (``bench/shards.py`` profile). ``.contiguous()`` gives the planar layout where needed.
    """
    return frames_hwc.movedim(-1, -3)


def pack_frame_members(members: Sequence[tuple[bytes, Sequence[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """B clips' frames members ``(data, frame_bytes)`` -> (all JPEG bytes (N,) uint8, lengths (B, F) int64).

    One tensor for the whole batch, in shared memory inside a loader worker: what ``frames="jpeg"``
    batches carry, so the undecoded members reach the main process as a handle, not pickled bytes.
    """
    f = len(members[0][1])
    if any(len(n) != f for _, n in members):
        raise ValueError(f"clips hold different frame counts: {sorted({len(n) for _, n in members})}")
    out = shared_uint8((sum(len(d) for d, _ in members),))  # (N,)
    view, pos = out.numpy(), 0
    for d, _ in members:
        view[pos : pos + len(d)] = np.frombuffer(d, dtype=np.uint8)
        pos += len(d)
    return out, torch.tensor([list(n) for _, n in members], dtype=torch.int64)  # (N,), (B, F)


def decode_frame_batch(data: torch.Tensor, lengths: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """Packed JPEGs (N,) uint8 + their lengths (B, F) -> (B, F, 3, H, W) uint8 on ``device``.

        batch = next(iter(make_loader(root, "train", batch_size=16, frames="jpeg", num_workers=2)))
        frames = decode_frame_batch(batch["frames_jpeg"], batch["frame_bytes"], "cuda")  # nvjpeg

    On a CUDA device all B*F JPEGs go to nvjpeg in one batched ``torchvision.io.decode_jpeg`` call;
    on the CPU each clip is one libjpeg-turbo list call. Storage is channels-last (see
    :func:`frames_chw`), as the reader's ``frames=True``. Raises ValueError when the lengths do not
    tile ``data`` or the frames differ in size, RuntimeError when a JPEG does not decode.
    """
    B, F = lengths.shape
    flat = [int(n) for n in lengths.reshape(-1).tolist()]
    if sum(flat) != data.numel() or any(n <= 0 for n in flat):
        raise ValueError(f"frame lengths sum to {sum(flat)} bytes, the packed data holds {data.numel()}")
    ends = list(accumulate(flat))
    jpegs = [data[e - n : e] for e, n in zip(ends, flat)]  # B*F views, no copy
    device = torch.device(device)
    if device.type == "cpu":
        first = _check_hwc(_decode_jpegs(jpegs[:F]))  # F x (H, W, 3)
        out = shared_uint8((B, F, *first[0].shape))  # (B, F, H, W, 3)
        stack_frames(first, out[0])
        for b in range(1, B):
            stack_frames(_check_hwc(_decode_jpegs(jpegs[b * F : (b + 1) * F])), out[b])
        return frames_chw(out)  # (B, F, 3, H, W)
    hwc = _check_hwc(_decode_jpegs(jpegs, device))  # B*F x (H, W, 3) on the device
    return frames_chw(torch.stack(hwc).view(B, F, *hwc[0].shape))  # (B, F, 3, H, W)


def decode_frames(data: bytes, lengths: Sequence[int]) -> np.ndarray:
    """Concatenated JPEGs + their lengths -> (F, H, W, 3) uint8 (numpy; see :func:`decode_clip_frames`)."""
    return decode_clip_frames(data, lengths).numpy()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8."""
    return decode_frames(data, [len(data)])[0]


def encode_meta(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


def decode_meta(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def check_key(key: str) -> None:
    if "." in key or "/" in key:
        raise DataError(f"sample key {key!r} contains '.' or '/', which WebDataset cannot group")
