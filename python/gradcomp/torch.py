"""gradcomp's DDP communication hook: error feedback over any gradcomp compressor, per bucket.

    import gradcomp, gradcomp.torch
    state = gradcomp.torch.State(ddp_model, gradcomp.top_k(k=10_000))
    ddp_model.register_comm_hook(state, gradcomp.torch.hook)

Each gradient bucket keeps a float32 residual e (whatever the gradient dtype). For bucket
gradient g (times the loss scale S under mixed precision) every rank computes

    p = e + g / S;   m = C(p);   e = p - decode(m)

and the hook returns S * mean over ranks of decode(m_r), so that DDP, the optimizer and a
GradScaler see what they would see without compression. The messages travel in gradcomp's
wire format: a gather-class compressor (Top-k, hard-threshold, sign, QSGD) exchanges
[status, size] headers and then a padded all-gather of the encoded messages; an
allreduce-class one (identity, random-k) exchanges headers and then all-reduces the
messages' values. This is the per-bucket exchange contract of gc::bucket_exchange
(docs/distributed.md) over torch.distributed.

Semantics (docs/pytorch.md):
  * Overlap: the hook returns at once; a worker thread compresses and exchanges the buckets
    in order (on a process group of its own, so its collectives never interleave with DDP's),
    while backward goes on.
  * A step with NaN/Inf in any rank's gradient (a GradScaler overflow): every rank's hook
    returns NaN for that bucket, so the scaler skips the step, and every bucket's residual
    is rolled back to what it was before the step. Nothing of a skipped step remains.
  * The residuals belong to parameters, not to bucket positions: DDP's bucket rebuild after
    the first iteration moves them with their parameters; state_dict() saves them by
    parameter name.
  * Warm-up: the first start_iter iterations are plain all-reduces (PowerSGD's
    start_powerSGD_iter).
  * CUDA buckets: error feedback and compression run on the device (gradcomp.cuda, the CUDA
    back end; float32, bfloat16 and float16 gradients read as they are), on the stream that
    produced the bucket, with the same bits as on the host; the messages (k entries for
    Top-k) come to the host, travel as above (as CUDA tensors on an NCCL group) and are
    decoded on the host in rank order, and the mean is copied back into the bucket. The
    residuals stay on the device (residuals() and state_dict() give CUDA tensors).
"""

import copy
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist

import gradcomp as _gc

__all__ = ["State", "hook", "register"]

_OK, _SKIPPED, _FAILED = 0, 1, 2
_STATE_FORMAT = "gradcomp.torch.State"
_STATE_VERSION = 1


def _is_compressor(c) -> bool:
    return type(c) in _gc.compressors.values()


@dataclass
class _Bucket:
    """One bucket layout's error feedback: the parameters it covers, in buffer order."""

    keys: Tuple[str, ...]
    numels: Tuple[int, ...]
    shapes: Tuple[torch.Size, ...]
    feedback: object  # gradcomp.ErrorFeedback

    def slices(self):
        offset = 0
        for key, n, shape in zip(self.keys, self.numels, self.shapes):
            yield key, offset, n, shape
            offset += n


@dataclass
class _StepLog:
    """What one iteration did, committed to the totals only if the step is applied."""

    applied: List[_Bucket] = field(default_factory=list)
    skipped: bool = False
    dense: bool = False
    message_bytes: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0
    squared_error: float = 0.0
    compute_seconds: float = 0.0


class State:
    """The hook's state: one error feedback per bucket layout, the metrics, the worker.

    Args:
        model: the DistributedDataParallel model (or its module): names the parameters, so
            that residuals follow their parameters through bucket rebuilds and checkpoints.
        compressor: a gradcomp compressor (each bucket gets a copy), or a callable mapping a
            bucket's number of elements to one, e.g. ``lambda d: gradcomp.top_k(k=d // 100)``.
        process_group: the ranks that average (default: the world). The hook exchanges on a
            new group over the same ranks, created here (so every rank must build its State
            at the same point, like any collective).
        loss_scale: the scale the gradients carry: a number, a callable returning it, or a
            GradScaler (its get_scale() is read at every bucket). Default 1.
        start_iter: iterations of plain all-reduce before compression starts.
        policy: "par" (exec::par, default) or "seq" (exec::seq, the reference; same bits).
    """

    def __init__(self, model, compressor, *, process_group=None,
                 loss_scale: Union[float, Callable[[], float], object] = 1.0, start_iter: int = 0,
                 policy: str = "par"):
        if not (_is_compressor(compressor) or callable(compressor)):
            raise TypeError("gradcomp.torch.State: compressor must be a gradcomp compressor (gradcomp.top_k(k=...), "
                            f"...) or a callable bucket size -> compressor, got {type(compressor).__name__}")
        if policy not in ("par", "seq"):
            raise ValueError(f"gradcomp.torch.State: policy must be 'par' or 'seq', got {policy!r}")
        if not isinstance(start_iter, int) or start_iter < 0:
            raise ValueError(f"gradcomp.torch.State: start_iter must be an int >= 0, got {start_iter!r}")
        if not dist.is_initialized():
            raise RuntimeError("gradcomp.torch.State: torch.distributed is not initialized "
                               "(call torch.distributed.init_process_group first)")
        self.compressor = compressor
        self.loss_scale = loss_scale
        self.start_iter = start_iter
        self.policy = policy
        self._names = {id(p): name for name, p in model.named_parameters()}
        self._shapes = {name: p.shape for name, p in model.named_parameters()}
        parent = process_group if process_group is not None else dist.group.WORLD
        ranks = _group_ranks(parent)
        backend = dist.get_backend(parent)
        self.group = dist.new_group(ranks=ranks, backend=backend)
        self.world_size = dist.get_world_size(self.group)
        self.rank = dist.get_rank(self.group)
        # Where the exchange's tensors live: NCCL moves CUDA tensors only.
        self._comm_device = (torch.device("cuda", torch.cuda.current_device()) if str(backend) == "nccl"
                             else torch.device("cpu"))

        self.iteration = 0
        self._buckets: Dict[Tuple[str, ...], _Bucket] = {}
        self._pending: Dict[str, torch.Tensor] = {}  # residuals waiting for their bucket (rebuild, load)
        self._compressed_steps = 0  # seeded compressors: every bucket's step, in lockstep
        self._log = _StepLog()
        self._last_log: Optional[_StepLog] = None
        self._totals = dict(steps=0, skipped_steps=0, dense_steps=0, message_bytes=0, sent_bytes=0,
                            received_bytes=0, total_error=0.0, compute_seconds=0.0)
        self._last_step = dict(message_bytes=0, sent_bytes=0, squared_error=0.0, compute_seconds=0.0)
        self._step_before_last = self._last_step  # what undo_last_step restores
        self._lock = threading.Lock()
        self._jobs: "queue.Queue" = queue.Queue()
        self._worker: Optional[threading.Thread] = None

    # ---- public ------------------------------------------------------------------------------

    def metrics(self) -> dict:
        """Totals over the applied steps: steps, skipped_steps, dense_steps (warm-up),
        message_bytes (this rank's encoded messages), sent_bytes (what its collectives moved,
        headers and padding included), received_bytes, total_error (sum over steps of
        ||e||^2, all buckets), compute_seconds (compress + decode, this rank), and last_step
        (the same for the last applied step)."""
        with self._lock:
            out = dict(self._totals)
            out["last_step"] = dict(self._last_step)
            return out

    def residuals(self) -> Dict[str, torch.Tensor]:
        """Every parameter's residual (float32, its parameter's shape), by parameter name."""
        self._drain()
        with self._lock:
            out = {k: v.clone() for k, v in self._pending.items()}
            for b in self._buckets.values():
                e = _error_of(b.feedback)
                for key, offset, n, shape in b.slices():
                    out[key] = e[offset:offset + n].reshape(shape).clone()
            return out

    def state_dict(self) -> dict:
        """Residuals by parameter name, the iteration, the metrics: what a checkpoint needs
        (torch.save takes it)."""
        self._drain()
        return {"format": _STATE_FORMAT, "version": _STATE_VERSION, "world_size": self.world_size,
                "iteration": self.iteration, "compressed_steps": self._compressed_steps,
                "residuals": self.residuals(), "metrics": self.metrics()}

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict(); the residuals reach their buckets at the next step, whatever
        the bucket layout is then. Checks everything before changing anything."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError("gradcomp.torch.State.load_state_dict: not a gradcomp.torch.State state")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"gradcomp.torch.State.load_state_dict: version {state.get('version')} is not "
                             f"{_STATE_VERSION}")
        residuals = state["residuals"]
        shapes = self._shapes
        for name, e in residuals.items():
            if name not in shapes:
                raise ValueError(f"gradcomp.torch.State.load_state_dict: the state has a residual for {name!r}, "
                                 "which this model does not have")
            if e.dtype != torch.float32 or e.shape != shapes[name]:
                raise ValueError(f"gradcomp.torch.State.load_state_dict: the residual of {name!r} is "
                                 f"{e.dtype} {tuple(e.shape)}, expected float32 {tuple(shapes[name])}")
            if not torch.isfinite(e).all():
                raise ValueError(f"gradcomp.torch.State.load_state_dict: the residual of {name!r} is not finite")
        self._drain()
        with self._lock:
            self._buckets.clear()
            self._pending = {k: v.detach().clone().reshape(-1) for k, v in residuals.items()}
            self.iteration = int(state["iteration"])
            self._compressed_steps = int(state["compressed_steps"])
            m = state["metrics"]
            for k in self._totals:
                self._totals[k] = type(self._totals[k])(m[k])
            self._last_log = None

    def undo_last_step(self) -> None:
        """Rolls every bucket's residual back to before the last step, for a step the trainer
        skips for its own reasons (steps skipped because of NaN/Inf are rolled back already).
        Every rank must call it."""
        self._drain()
        with self._lock:
            log = self._last_log
            if log is None or log.skipped or log.dense:
                raise RuntimeError("gradcomp.torch.State.undo_last_step: there is no compressed step to take back "
                                   "(only the last one, once)")
            for b in log.applied:
                b.feedback.undo()
            self._compressed_steps -= 1
            t = self._totals
            t["steps"] -= 1
            t["skipped_steps"] += 1
            t["message_bytes"] -= log.message_bytes
            t["sent_bytes"] -= log.sent_bytes
            t["received_bytes"] -= log.received_bytes
            t["total_error"] -= log.squared_error
            t["compute_seconds"] -= log.compute_seconds
            self._last_step = self._step_before_last
            self._last_log = None

    def close(self) -> None:
        """Stops the worker thread (it is a daemon; closing is optional)."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None

    # ---- the hook ----------------------------------------------------------------------------

    def _hook(self, bucket: dist.GradBucket) -> "torch.futures.Future[torch.Tensor]":
        result: torch.futures.Future = torch.futures.Future()
        buffer = bucket.buffer()
        # A CUDA bucket is compressed on the stream that produced it (the worker thread's own
        # current stream would not be ordered after backward's kernels).
        stream = torch.cuda.current_stream(buffer.device) if buffer.is_cuda else None
        job = (buffer, list(bucket.parameters()), bool(bucket.is_last()), self._scale_now(), stream, result)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="gradcomp.torch", daemon=True)
            self._worker.start()
        self._jobs.put(job)
        return result

    def _scale_now(self) -> float:
        s = self.loss_scale
        if hasattr(s, "get_scale"):
            s = s.get_scale()
        elif callable(s):
            s = s()
        s = float(s)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"gradcomp.torch: the loss scale must be finite and > 0, got {s}")
        return s

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            buffer, params, is_last, scale, stream, result = job
            out, error = None, None
            try:
                if stream is not None:
                    with torch.cuda.device(buffer.device), torch.cuda.stream(stream):
                        out = self._exchange(buffer, params, scale)
                else:
                    out = self._exchange(buffer, params, scale)
            except BaseException as e:  # noqa: BLE001 (reported through the future)
                error = e
                self._log.skipped = True  # backward raises: no optimizer step, so roll the step back
            try:
                self._finish_iteration(is_last)
            except BaseException as e:  # noqa: BLE001
                error = error or e
            # The future is always completed: DDP waits on it.
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(out)
            self._jobs.task_done()

    def _drain(self) -> None:
        """Waits until the worker has finished every bucket handed to it."""
        if self._worker is not None:
            self._jobs.join()

    def _exchange(self, buffer: torch.Tensor, params, scale: float) -> torch.Tensor:
        if self.iteration < self.start_iter:
            return self._dense(buffer)
        # Anything that goes wrong before the header exchange is reported through it, so that
        # every rank raises instead of some waiting for a collective that never comes.
        t0 = time.perf_counter()
        status, message, failure, b, g, before = _OK, None, None, None, None, 0.0
        try:
            b = self._bucket_for(params, buffer)
            if buffer.is_cuda:  # the device step reads float32, bfloat16 and float16 as they are
                g = buffer if buffer.dtype in _CUDA_DTYPES else buffer.float()
                g = g if g.is_contiguous() else g.contiguous()
            else:
                g = buffer if buffer.dtype == torch.float32 and buffer.is_contiguous() else buffer.float().contiguous()
            before = b.feedback.metrics["total_error"]
            message = b.feedback.compress(g, 1.0 / scale, policy=self.policy)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, _gc.Error) and g is not None and not bool(torch.isfinite(g).all()):
                status = _SKIPPED
            else:
                status, failure = _FAILED, e
        compute = time.perf_counter() - t0

        gather = message is None or b.feedback.compressor.aggregation == "gather"
        key = () if gather else message.summation_key
        size = message.wire_bytes if message is not None else 0
        header = torch.tensor([status, size, *key] + [0] * (4 - len(key)), dtype=torch.int64, device=self._comm_device)
        headers = [torch.empty_like(header) for _ in range(self.world_size)]
        dist.all_gather(headers, header, group=self.group)
        statuses = [int(h[0]) for h in headers]
        log = self._log
        log.sent_bytes += header.numel() * 8
        log.received_bytes += header.numel() * 8 * (self.world_size - 1)

        if _FAILED in statuses:
            self._take_back(b, message)
            if failure is not None:
                raise failure
            raise _gc.Error(f"gradcomp.torch: rank {statuses.index(_FAILED)} failed to compress its bucket "
                            "(its own exception says why)")
        if _SKIPPED in statuses:
            self._take_back(b, message)
            log.skipped = True
            return buffer.fill_(math.nan)

        # The mean is formed in the bucket itself when it is a float32 host tensor (error feedback
        # has read g already); a float16 / bfloat16 or CUDA bucket gets it copied in at the end.
        mean = buffer.zero_() if g is buffer and not buffer.is_cuda else torch.zeros(b.feedback.dim, dtype=torch.float32)
        if gather:
            sizes = [int(h[1]) for h in headers]
            padded = max(sizes)
            send = torch.empty(padded, dtype=torch.uint8)  # the padding is never decoded
            message.encode_into(send)
            received = [torch.empty(padded, dtype=torch.uint8, device=self._comm_device) for _ in range(self.world_size)]
            dist.all_gather(received, send.to(self._comm_device), group=self.group)
            t0 = time.perf_counter()
            kind = type(message)
            for r in range(self.world_size):  # rank order: the same sum on every rank
                kind.decode(received[r][:sizes[r]].cpu()).decompress_add(mean, policy=self.policy)
            mean.div_(self.world_size)
            compute += time.perf_counter() - t0
            log.sent_bytes += padded
            log.received_bytes += padded * (self.world_size - 1)
        else:
            keys = [tuple(int(v) for v in h[2:2 + len(key)]) for h in headers]
            if any(k != keys[0] for k in keys):
                self._take_back(b, message)
                raise _gc.Error(f"gradcomp.torch: the ranks' {type(message).__name__} messages do not add up "
                                f"(keys {keys}); every rank must use the same compressor parameters and seed")
            values = torch.from_numpy(message.values)
            if self._comm_device.type != "cpu":
                moved = values.to(self._comm_device)
                dist.all_reduce(moved, group=self.group)
                values = moved.cpu()
            else:
                dist.all_reduce(values, group=self.group)
            t0 = time.perf_counter()
            values.div_(self.world_size)
            message.with_values(values).decompress_add(mean, policy=self.policy)
            compute += time.perf_counter() - t0
            log.sent_bytes += values.numel() * 4
            log.received_bytes += values.numel() * 4

        if scale != 1.0:
            mean.mul_(scale)  # back to the units of the gradients the hook was given
        # A sum is finite only if every term is, so one sum usually settles it; if the sum
        # overflowed, the exact check decides.
        if not math.isfinite(float(mean.sum())) and not bool(torch.isfinite(mean).all()):
            # Every rank has the same mean, so every rank gets here: the scaler will skip.
            self._take_back(b, message)
            log.skipped = True
            return buffer.fill_(math.nan)
        log.applied.append(b)
        log.message_bytes += size
        log.squared_error += b.feedback.metrics["total_error"] - before
        log.compute_seconds += compute
        if mean is not buffer:
            buffer.copy_(mean)
        return buffer

    def _take_back(self, b: Optional[_Bucket], message) -> None:
        if b is not None and message is not None:
            b.feedback.undo()

    def _dense(self, buffer: torch.Tensor) -> torch.Tensor:
        """Warm-up: the mean by a plain all-reduce, as DDP's default hook."""
        buffer.div_(self.world_size)
        dist.all_reduce(buffer, group=self.group)
        n = buffer.numel() * buffer.element_size()
        self._log.dense = True
        self._log.message_bytes += n
        self._log.sent_bytes += n
        self._log.received_bytes += n
        return buffer

    def _finish_iteration(self, is_last: bool) -> None:
        if not is_last:
            return
        with self._lock:
            log, self._log = self._log, _StepLog()
            self.iteration += 1
            t = self._totals
            if log.skipped:
                for b in log.applied:  # the other buckets of the skipped step
                    b.feedback.undo()
                t["skipped_steps"] += 1
                self._last_log = None
                return
            if log.dense:
                t["dense_steps"] += 1
            else:
                t["steps"] += 1
                self._compressed_steps += 1
            for k in ("message_bytes", "sent_bytes", "received_bytes", "compute_seconds"):
                t[k] += getattr(log, k)
            t["total_error"] += log.squared_error
            self._step_before_last = self._last_step
            self._last_step = dict(message_bytes=log.message_bytes, sent_bytes=log.sent_bytes,
                                   squared_error=log.squared_error, compute_seconds=log.compute_seconds)
            self._last_log = log

    # ---- buckets and residuals ---------------------------------------------------------------

    def _bucket_for(self, params, buffer: torch.Tensor) -> _Bucket:
        """The error feedback of this bucket layout; a new layout (DDP's rebuild, a loaded
        checkpoint) gets its residual from its parameters' residuals."""
        keys = tuple(self._key(p) for p in params)
        with self._lock:
            b = self._buckets.get(keys)
            if b is not None:
                return b
            numels = tuple(p.numel() for p in params)
            if sum(numels) != buffer.numel():
                raise RuntimeError(f"gradcomp.torch: a bucket of {buffer.numel()} elements holds parameters of "
                                   f"{sum(numels)} elements; gradcomp expects DDP's flat, unpadded bucket layout")
            # Layouts that share a parameter with this one are stale: their residuals move to
            # the parameters (pending) and from there into the new layout.
            for old_keys in [k for k in self._buckets if set(k) & set(keys)]:
                old = self._buckets.pop(old_keys)
                e = _error_of(old.feedback)
                for key, offset, n, _ in old.slices():
                    self._pending[key] = e[offset:offset + n].clone()
            dim = buffer.numel()
            c = self.compressor(dim) if not _is_compressor(self.compressor) else copy.copy(self.compressor)
            if not _is_compressor(c):
                raise TypeError(f"gradcomp.torch: the compressor callable returned {type(c).__name__}, not a "
                                "gradcomp compressor")
            if hasattr(c, "step"):
                c.step = self._compressed_steps
            if buffer.is_cuda:
                feedback = _gc_cuda().ErrorFeedback(c, dim, device=buffer.device)
            else:
                feedback = _gc.ErrorFeedback(c, dim)
            parts = [self._pending.pop(k, None) for k in keys]
            if any(part is not None for part in parts):
                feedback.assign_error(torch.cat([
                    part.to(buffer.device) if part is not None
                    else torch.zeros(n, dtype=torch.float32, device=buffer.device)
                    for part, n in zip(parts, numels)]))
            b = _Bucket(keys, numels, tuple(p.shape for p in params), feedback)
            self._buckets[keys] = b
            return b

    def _key(self, p) -> str:
        try:
            return self._names[id(p)]
        except KeyError:
            raise RuntimeError("gradcomp.torch: a bucket holds a parameter the State's model does not have "
                               "(build the State with the DDP model the hook is registered on)") from None

_CUDA_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _gc_cuda():
    """gradcomp.cuda, imported on the first CUDA bucket (it needs the CUDA back end)."""
    import gradcomp.cuda as gc_cuda  # noqa: PLC0415
    if not gc_cuda.available():
        raise RuntimeError("gradcomp.torch: the bucket is on a CUDA device, but this gradcomp "
                           + ("was built without its CUDA back end (configure with -DGRADCOMP_BUILD_CUDA=ON)"
                              if not _gc._core.cuda_built() else "sees no CUDA device"))
    return gc_cuda


def _error_of(feedback) -> torch.Tensor:
    """A feedback's residual as a tensor: on the host for ErrorFeedback, on the device for
    gradcomp.cuda.ErrorFeedback."""
    e = feedback.error
    return e if isinstance(e, torch.Tensor) else torch.from_numpy(e)


def _group_ranks(group) -> List[int]:
    if group is dist.group.WORLD or group is None:
        return list(range(dist.get_world_size()))
    if hasattr(dist, "get_process_group_ranks"):
        return list(dist.get_process_group_ranks(group))
    return sorted(dist.distributed_c10d._pg_group_ranks[group].keys())


def hook(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The DDP communication hook: ``ddp_model.register_comm_hook(state, gradcomp.torch.hook)``."""
    return state._hook(bucket)


def register(model, compressor, **options) -> State:
    """Builds a State for the DDP model and registers the hook on it; returns the State."""
    state = State(model, compressor, **options)
    model.register_comm_hook(state, hook)
    return state
