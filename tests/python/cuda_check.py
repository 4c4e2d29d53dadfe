"""gradcomp.cuda and the DDP hook on CUDA buckets, on a machine whose torch sees a GPU.

Not a test_*.py file: ctest's python label runs everywhere and must not skip, and this needs a
GPU. scripts/gpu-check.sh runs it (python -m unittest -v cuda_check) with the module built
there for that machine's Python.

  - gradcomp.cuda.ErrorFeedback against gradcomp.ErrorFeedback, bit for bit: messages (wire
    bytes), residuals and metrics over steps, for every compressor with a CUDA kernel,
    float32 gradients and bfloat16 / float16 ones (against the host step on their exact
    float32 widening);
  - errors: another device, dtype or size; a non-finite residual to assign;
  - the DDP hook (one rank, gloo): CUDA buckets and the same values in host buckets give the
    same returned buckets and residuals, bit for bit (float32, bfloat16, float16 buckets, a
    loss scale); and a CUDA model trains under DDP with it, its residuals on the device, its
    state_dict round-tripping.
"""

import os
import tempfile
import unittest

import numpy as np
import torch
import torch.distributed as dist

import gradcomp as gc
import gradcomp.cuda as gcc
import gradcomp.torch as gct
from test_ddp import FakeBucket

COMPRESSORS = [
    lambda: gc.top_k(k=37),
    lambda: gc.hard_threshold(0.75),
    lambda: gc.random_k(k=29, seed=3),
    lambda: gc.unbiased_random_k(k=29, seed=5),
    lambda: gc.scaled_sign(),
    lambda: gc.blockwise_sign(block_size=16),
    lambda: gc.onebit(),
    lambda: gc.onebit(block_size=16),
    lambda: gc.qsgd(s=4, seed=7),
    lambda: gc.terngrad(seed=8),
    lambda: gc.dithering(s=3, partition="natural", norm="l2", seed=11),
    lambda: gc.dithering(s=2, seed=12),
    lambda: gc.sign(),
    lambda: gc.grid_rounding(spacing=0.125),
    lambda: gc.grid_rounding(spacing=0.1, stochastic=True, seed=2),
    lambda: gc.maxmin_quantizer(bits=4, bucket_size=64, seed=9),
    lambda: gc.float16_cast(),
    lambda: gc.bfloat16_cast(pre_scale=False),
    lambda: gc.natural_compression(seed=10),
]


def bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().view(torch.int32).numpy()


@unittest.skipUnless(gcc.available(), "needs gradcomp's CUDA back end and a CUDA device")
class DeviceErrorFeedback(unittest.TestCase):
    def test_same_bits_as_the_host(self):
        gen = torch.Generator().manual_seed(1)
        for make in COMPRESSORS:
            for dim in (1, 4097, 300001):
                for dtype in (torch.float32, torch.bfloat16, torch.float16):
                    with self.subTest(compressor=repr(make()), dim=dim, dtype=str(dtype)):
                        host = gc.ErrorFeedback(make(), dim)
                        device = gcc.ErrorFeedback(make(), dim, device="cuda")
                        for step in range(3):
                            g = (torch.randn(dim, generator=gen) * (1 + step)).to(dtype)
                            want = host.compress(g.float(), 0.5)
                            got = device.compress(g.cuda(), 0.5)
                            self.assertEqual(gc.encode(got), gc.encode(want))
                            np.testing.assert_array_equal(bits(device.error), bits(torch.from_numpy(host.error)))
                            self.assertEqual(device.metrics, host.metrics)
                        device.undo()
                        host.undo()
                        np.testing.assert_array_equal(bits(device.error), bits(torch.from_numpy(host.error)))
                        self.assertEqual(device.compressor.__repr__(), host.compressor.__repr__())

    def test_errors(self):
        ef = gcc.ErrorFeedback(gc.top_k(k=3), 10)
        with self.assertRaisesRegex(ValueError, "elements"):
            ef.compress(torch.zeros(11, device="cuda"))
        with self.assertRaisesRegex(TypeError, "float64"):
            ef.compress(torch.zeros(10, dtype=torch.float64, device="cuda"))
        with self.assertRaisesRegex(ValueError, "cpu"):
            ef.compress(torch.zeros(10))
        bad = torch.zeros(10, device="cuda")
        bad[4] = float("nan")
        with self.assertRaises(gc.Error):
            ef.compress(bad)
        self.assertEqual(ef.metrics["steps"], 0)
        with self.assertRaisesRegex(gc.Error, "not finite"):
            ef.assign_error(bad)
        with self.assertRaisesRegex(TypeError, "no CUDA kernel"):
            gcc.ErrorFeedback(gc.identity(), 10)


@unittest.skipUnless(gcc.available(), "needs gradcomp's CUDA back end and a CUDA device")
class HookOnCudaBuckets(unittest.TestCase):
    def setUp(self):
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("gloo", rank=0, world_size=1)

    def tearDown(self):
        dist.barrier()
        dist.destroy_process_group()

    def test_cuda_buckets_give_the_host_buckets_bits(self):
        """The hook called as DDP calls it (test_ddp's FakeBucket), on a CUDA bucket and on the
        same values on the host: the same returned bucket and residuals, bit for bit."""
        torch.manual_seed(3)
        host_model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.Linear(30, 5))
        device_model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.Linear(30, 5)).cuda()
        layout = [["1.weight", "1.bias"], ["0.weight", "0.bias"]]
        for make in (lambda d: gc.top_k(k=max(1, d // 7)), lambda d: gc.hard_threshold(0.5),
                     lambda d: gc.blockwise_sign(block_size=32), lambda d: gc.qsgd(s=3, seed=4),
                     lambda d: gc.random_k(k=max(1, d // 5), seed=6)):
            for dtype in (torch.float32, torch.bfloat16, torch.float16):
                with self.subTest(compressor=repr(make(100)), dtype=str(dtype)):
                    host = gct.State(host_model, make, loss_scale=4.0)
                    device = gct.State(device_model, make, loss_scale=4.0)
                    hp, dp = dict(host_model.named_parameters()), dict(device_model.named_parameters())
                    for _ in range(3):
                        for b, names in enumerate(layout):
                            values = torch.cat([torch.randn(hp[n].numel()) for n in names]).to(dtype)
                            h, d = values.clone(), values.cuda()
                            last = b == len(layout) - 1
                            out_h = gct.hook(host, FakeBucket(b, h, [hp[n] for n in names], last)).wait()
                            out_d = gct.hook(device, FakeBucket(b, d, [dp[n] for n in names], last)).wait()
                            self.assertTrue(out_d.is_cuda)
                            self.assertEqual(out_d.dtype, dtype)
                            self.assertTrue(torch.equal(out_d.cpu(), out_h))
                    rh, rd = host.residuals(), device.residuals()
                    for n in rh:
                        self.assertTrue(rd[n].is_cuda)
                        np.testing.assert_array_equal(bits(rd[n]), bits(rh[n]))
                    self.assertEqual(device.metrics()["total_error"], host.metrics()["total_error"])
                    host.close()
                    device.close()

    def test_training_steps_on_device(self):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).cuda()
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0], bucket_cap_mb=0.01)
        state = gct.register(ddp, lambda d: gc.top_k(k=max(1, d // 10)))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        x, y = torch.randn(256, 64, device="cuda"), torch.randint(0, 10, (256,), device="cuda")
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        state._drain()
        self.assertEqual(state.metrics()["steps"], 30)
        self.assertLess(losses[-1], losses[0])
        residuals = state.residuals()
        self.assertEqual(set(residuals), {n for n, _ in model.named_parameters()})
        for name, p in model.named_parameters():
            self.assertTrue(residuals[name].is_cuda)
            self.assertEqual(residuals[name].shape, p.shape)
        saved = state.state_dict()
        with tempfile.TemporaryFile() as f:
            torch.save(saved, f)
            f.seek(0)
            loaded = torch.load(f)
        state.load_state_dict(loaded)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        state._drain()
        self.assertEqual(state.metrics()["steps"], 31)


if __name__ == "__main__":
    unittest.main()
