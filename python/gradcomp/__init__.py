"""gradcomp: gradient compressors with exact wire formats and error feedback.

A thin layer over the C++ library (docs/pytorch.md). Tensors (PyTorch, NumPy, anything
with ``__dlpack__`` or the buffer protocol) are read and written in place, without copies;
calls run on the parallel CPU back end (``exec::par``) with the GIL released, or on the
sequential reference with ``policy="seq"`` (bit-identical results).

    import gradcomp as gc
    m = gc.compress(gc.top_k(k=1000), g)          # a gc.sparse_vector
    wire = m.encode()                             # exactly m.wire_bytes bytes
    gc.decompress_add(gc.sparse_vector.decode(wire), params, alpha=-lr)

    ef = gc.ErrorFeedback(gc.hard_threshold(1e-3), g.numel())
    m = ef.compress(g)                            # p = e + g; m = C(p); e = p - decode(m)

The DDP communication hook is in gradcomp.torch.
"""

from ._core import (  # noqa: F401  (the public names)
    Error,
    ErrorFeedback,
    __version__,
    bfloat16_cast,
    blockwise_sign,
    bucket_quantized_vector,
    compress,
    dense_vector,
    dithering,
    float16_cast,
    float_code_vector,
    grid_rounding,
    hard_threshold,
    identity,
    maxmin_quantizer,
    natural_compression,
    onebit,
    qsgd,
    quantized_vector,
    random_k,
    scaled_sign,
    seeded_sparse_vector,
    sign,
    sign_vector,
    simd_target,
    sparse_vector,
    terngrad,
    top_k,
    two_level_vector,
    unbiased_random_k,
)

#: Every compressor class, by its C++ name.
compressors = {
    c.name: c
    for c in (identity, hard_threshold, top_k, random_k, unbiased_random_k, scaled_sign, blockwise_sign, onebit, sign,
              qsgd, terngrad, dithering, maxmin_quantizer, float16_cast, bfloat16_cast, natural_compression, grid_rounding)
}

#: Every payload class.
payloads = (dense_vector, sparse_vector, seeded_sparse_vector, sign_vector, two_level_vector, quantized_vector,
            bucket_quantized_vector, float_code_vector)


def decompress_add(message, out, alpha=1.0, *, policy="par"):
    """out += alpha * decode(message), in place (out: float32, message.dim elements)."""
    message.decompress_add(out, alpha, policy=policy)


def encode(message):
    """The message's wire format as bytes (exactly message.wire_bytes long)."""
    return message.encode()


def decode(data, payload_type):
    """The message of type payload_type (gc.sparse_vector, ...) encoded in data (bytes or a uint8
    tensor); raises gc.Error if data is malformed."""
    if payload_type not in payloads:
        raise TypeError(f"gradcomp.decode: payload_type must be one of {[p.__name__ for p in payloads]}, "
                        f"got {payload_type!r}")
    return payload_type.decode(data)


def wire_bytes(message):
    return message.wire_bytes


def sent_elements(message):
    return message.sent_elements


__all__ = [
    "Error", "ErrorFeedback", "bfloat16_cast", "blockwise_sign", "bucket_quantized_vector", "compress", "compressors", "decode", "decompress_add",
    "dense_vector", "dithering", "encode", "float16_cast", "float_code_vector", "grid_rounding", "hard_threshold", "identity", "maxmin_quantizer", "natural_compression", "onebit", "payloads", "qsgd",
    "quantized_vector", "random_k", "scaled_sign", "seeded_sparse_vector", "sent_elements", "sign", "sign_vector",
    "simd_target", "sparse_vector", "terngrad", "top_k", "two_level_vector", "unbiased_random_k", "wire_bytes",
]
