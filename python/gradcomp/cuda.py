"""Error feedback on CUDA tensors: gradcomp's CUDA back end (gc::cuda::error_feedback) for torch.

    import torch, gradcomp, gradcomp.cuda
    ef = gradcomp.cuda.ErrorFeedback(gradcomp.top_k(k=10_000), dim, device="cuda")
    message = ef.compress(grad)          # grad: a CUDA tensor, float32, bfloat16 or float16
    gradcomp.encode(message)             # the wire bytes, as gradcomp.ErrorFeedback sends them

Each step runs on the device, on torch's current stream of the gradient's device, and gives
the bits of gradcomp.ErrorFeedback on the same gradient (residual float32): p = e + scale * g,
m = C(p), e = p - decode(m). The message comes back to the host as the compressor's payload
object (the host payload gradcomp.ErrorFeedback returns), so it encodes, decodes and
decompresses as every message does. Top-k, hard-threshold, random-k, unbiased random-k,
sign, scaled and blockwise sign, QSGD, TernGrad, grid rounding, max-min quantization, the
float16 and bfloat16 casts and natural compression have kernels (the last four compiled but
not yet run on a GPU).

The module needs a gradcomp built with the CUDA back end (GRADCOMP_BUILD_CUDA) and a device:
available() says whether both are there.
"""

import copy

import torch

import gradcomp as _gc

__all__ = ["available", "ErrorFeedback"]

_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def available() -> bool:
    """True when gradcomp was built with its CUDA back end and torch sees a CUDA device."""
    core = _gc._core
    return bool(core.cuda_built()) and core.cuda_device_count() > 0 and torch.cuda.is_available()


class ErrorFeedback:
    """gradcomp.ErrorFeedback with the residual in device memory (see the module's doc).

    Args:
        compressor: a gradcomp compressor with a CUDA kernel (a copy is kept).
        dim: the number of elements of every gradient.
        device: the CUDA device of the residual and the gradients (default: the current one).
    """

    def __init__(self, compressor, dim: int, device=None):
        if not available():
            raise RuntimeError("gradcomp.cuda.ErrorFeedback: " + (
                "this gradcomp was built without its CUDA back end (configure with -DGRADCOMP_BUILD_CUDA=ON)"
                if not _gc._core.cuda_built() else "no CUDA device"))
        self.device = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"gradcomp.cuda.ErrorFeedback: device must be a CUDA device, got {self.device}")
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._compressor = copy.copy(compressor)
        with torch.cuda.device(self.device):
            self._f = _gc._core.CudaErrorFeedback(compressor, int(dim))

    @property
    def dim(self) -> int:
        return self._f.dim

    @property
    def compressor(self):
        """A copy of the wrapped compressor (a seeded one with its current step)."""
        c = copy.copy(self._compressor)
        if hasattr(c, "step"):
            c.step = self._f.step
        return c

    @property
    def metrics(self) -> dict:
        return self._f.metrics

    @property
    def can_undo(self) -> bool:
        return self._f.can_undo

    def _check(self, t: torch.Tensor, name: str, dtypes) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gradcomp.cuda.ErrorFeedback: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device != self.device:
            raise ValueError(f"gradcomp.cuda.ErrorFeedback: {name} is on {t.device}, the residual on {self.device}")
        if t.dtype not in dtypes:
            raise TypeError(f"gradcomp.cuda.ErrorFeedback: {name} must be one of "
                            f"{', '.join(str(d) for d in dtypes)}, got {t.dtype}")
        if t.numel() != self.dim:
            raise ValueError(f"gradcomp.cuda.ErrorFeedback: {name} has {t.numel()} elements, the residual {self.dim}")
        if not t.is_contiguous():
            raise ValueError(f"gradcomp.cuda.ErrorFeedback: {name} must be contiguous")

    def compress(self, g: torch.Tensor, scale: float = 1.0, policy=None):
        """One step on the CUDA tensor g; returns the message (the compressor's host payload).
        policy is accepted for gradcomp.ErrorFeedback's signature and ignored."""
        del policy
        self._check(g, "g", _DTYPES)
        stream = torch.cuda.current_stream(self.device).cuda_stream
        with torch.cuda.device(self.device):
            wire = self._f.compress(g.data_ptr(), _DTYPES[g.dtype], float(scale), stream=stream)
        return type(self._compressor).payload_type.decode(wire)

    def undo(self) -> None:
        self._f.undo()

    @property
    def error(self) -> torch.Tensor:
        """The residual e (a float32 copy on the device)."""
        out = torch.empty(self.dim, dtype=torch.float32, device=self.device)
        with torch.cuda.device(self.device):
            self._f.copy_error(out.data_ptr(), stream=torch.cuda.current_stream(self.device).cuda_stream)
        return out

    def assign_error(self, e: torch.Tensor) -> None:
        """Replaces the residual by e (dim finite values; moved to the device as float32)."""
        e = e.detach().to(device=self.device, dtype=torch.float32).contiguous()
        self._check(e, "e", (torch.float32,))
        with torch.cuda.device(self.device):
            self._f.assign_error(e.data_ptr(), stream=torch.cuda.current_stream(self.device).cuda_stream)

    def __repr__(self) -> str:
        return f"gradcomp.cuda.ErrorFeedback({self._compressor!r}, dim={self.dim}, device={self.device})"
