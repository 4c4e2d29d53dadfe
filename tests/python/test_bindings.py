"""The gradcomp Python package against the C++ library, bit for bit, and its error messages.

Run by ctest (label python) with PYTHONPATH=<build>/python and GRADCOMP_PYTHON_REFERENCE set
to the gradcomp_python_reference program (tests/python/reference.cpp), which computes the
same things from the C++ headers on exec::seq.
"""

import copy
import os
import pickle
import subprocess
import tempfile
import threading
import unittest

import numpy as np
import torch

import gradcomp as gc

REFERENCE = os.environ.get("GRADCOMP_PYTHON_REFERENCE")

# (spec for the C++ reference, the same compressor in Python)
SPECS = [
    ("identity", lambda: gc.identity()),
    ("top_k:k=37", lambda: gc.top_k(k=37)),
    ("hard_threshold:lambda=0.75", lambda: gc.hard_threshold(0.75)),
    ("random_k:k=29,seed=3", lambda: gc.random_k(k=29, seed=3)),
    ("unbiased_random_k:k=29,seed=5", lambda: gc.unbiased_random_k(k=29, seed=5)),
    ("scaled_sign", lambda: gc.scaled_sign()),
    ("blockwise_sign:block_size=16", lambda: gc.blockwise_sign(block_size=16)),
    ("onebit", lambda: gc.onebit()),
    ("onebit:block_size=16", lambda: gc.onebit(block_size=16)),
    ("qsgd:s=4,seed=7", lambda: gc.qsgd(s=4, seed=7)),
    ("terngrad:seed=8", lambda: gc.terngrad(seed=8)),
    ("dithering:s=3,partition=natural,norm=l2,seed=11", lambda: gc.dithering(s=3, partition="natural", norm="l2", seed=11)),
    ("dithering:s=2,seed=12", lambda: gc.dithering(s=2, seed=12)),
    ("sign", lambda: gc.sign()),
    ("sign:scale=0.125", lambda: gc.sign(scale=0.125)),
    ("float16_cast", lambda: gc.float16_cast()),
    ("bfloat16_cast", lambda: gc.bfloat16_cast()),
    ("natural_compression:seed=10", lambda: gc.natural_compression(seed=10)),
    ("maxmin_quantizer:bits=4,bucket_size=100,seed=9", lambda: gc.maxmin_quantizer(bits=4, bucket_size=100, seed=9)),
    ("grid_rounding:spacing=0.125", lambda: gc.grid_rounding(spacing=0.125)),
    ("grid_rounding:spacing=0.1,stochastic=1,seed=2", lambda: gc.grid_rounding(spacing=0.1, stochastic=True, seed=2)),
]

STEPS = 3


def inputs(kind, dim, steps, seed):
    """steps x dim float32 inputs of a kind that stresses the compressors."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        x = rng.standard_normal((steps, dim))
    elif kind == "ties":  # few distinct magnitudes, many zeros: Top-k's tie rule, thresholds at equality
        x = rng.choice([0.0, 0.0, 0.75, -0.75, 1.5, -1.5], size=(steps, dim))
    elif kind == "denormal":  # denormals, signed zeros and large values side by side
        x = rng.standard_normal((steps, dim)) * np.where(rng.random((steps, dim)) < 0.5, 1e-41, 1e30)
        x[:, ::7] = -0.0
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(x.astype(np.float32))


@unittest.skipIf(REFERENCE is None, "GRADCOMP_PYTHON_REFERENCE is not set (ctest sets it)")
class TestAgainstCpp(unittest.TestCase):
    """compress, ErrorFeedback and state_dict give the C++ library's bytes, on both policies."""

    def check(self, spec, make, kind, dim, seed):
        x = inputs(kind, dim, STEPS, seed)
        if spec.startswith(("qsgd", "grid_rounding")) and kind == "denormal":
            x = np.clip(x, -1e6, 1e6)  # their level counts are bounded by design (C++ throws, tested there)
        with tempfile.TemporaryDirectory() as d:
            x.tofile(os.path.join(d, "x.f32"))
            subprocess.run([REFERENCE, spec, os.path.join(d, "x.f32"), str(dim), str(STEPS), d], check=True)

            def read(name):
                with open(os.path.join(d, name), "rb") as f:
                    return f.read()

            for policy in ("seq", "par"):
                what = f"{spec} {kind} d={dim} policy={policy}"
                c = make()
                m = gc.compress(c, x[0], policy=policy)
                self.assertEqual(m.encode(), read("compress.bin"), what)
                self.assertEqual(len(read("compress.bin")), m.wire_bytes, what)
                ef = gc.ErrorFeedback(make(), dim)
                for t in range(STEPS):
                    # torch tensors and NumPy arrays alike (both through DLPack)
                    g = torch.from_numpy(x[t]) if t % 2 else x[t]
                    self.assertEqual(ef.compress(g, 0.5, policy=policy).encode(), read(f"ef_{t}.bin"), f"{what} t={t}")
                self.assertEqual(ef.error.tobytes(), read("residual.f32"), what)
                self.assertEqual(ef.state_dict()["checkpoint"], read("checkpoint.bin"), what)

    def test_every_compressor_small(self):
        for spec, make in SPECS:
            for kind in ("normal", "ties", "denormal"):
                with self.subTest(spec=spec, kind=kind):
                    self.check(spec, make, kind, 1000, seed=11)

    def test_every_compressor_large(self):
        # Large enough for exec::par to split the work across threads and SIMD lanes.
        for spec, make in SPECS:
            with self.subTest(spec=spec):
                self.check(spec, make, "normal", (1 << 18) + 3, seed=12)

    def test_dimension_one(self):
        for spec, make in SPECS:
            if spec.startswith(("top_k", "random_k", "unbiased_random_k")):
                spec = spec.replace("k=37", "k=1").replace("k=29", "k=1")
                base = make()
                base.k = 1
                make = (lambda b: (lambda: copy.copy(b)))(base)
            with self.subTest(spec=spec):
                self.check(spec, make, "normal", 1, seed=13)


class TestCompressors(unittest.TestCase):
    def test_categories_match_the_cpp_concepts(self):
        expected = {
            "identity": (("absolute", "contractive", "unbiased"), "allreduce", gc.dense_vector),
            "hard_threshold": (("absolute",), "gather", gc.sparse_vector),
            "top_k": (("contractive",), "gather", gc.sparse_vector),
            "random_k": (("contractive",), "allreduce", gc.seeded_sparse_vector),
            "unbiased_random_k": (("unbiased",), "allreduce", gc.seeded_sparse_vector),
            "scaled_sign": (("contractive",), "gather", gc.sign_vector),
            "blockwise_sign": (("contractive",), "gather", gc.sign_vector),
            "onebit": (("contractive",), "gather", gc.two_level_vector),
            "qsgd": (("unbiased",), "gather", gc.quantized_vector),
            "terngrad": (("unbiased",), "gather", gc.quantized_vector),
            "dithering": (("unbiased",), "gather", gc.quantized_vector),
            "sign": ((), "gather", gc.sign_vector),
            "maxmin_quantizer": (("unbiased",), "gather", gc.bucket_quantized_vector),
            "float16_cast": (("contractive",), "gather", gc.float_code_vector),
            "bfloat16_cast": (("contractive",), "gather", gc.float_code_vector),
            "natural_compression": (("unbiased",), "gather", gc.float_code_vector),
            "grid_rounding": (("absolute",), "gather", gc.quantized_vector),
        }
        self.assertEqual(set(gc.compressors), set(expected))
        for name, (categories, aggregation, payload) in expected.items():
            cls = gc.compressors[name]
            self.assertEqual(cls.name, name)
            self.assertEqual(cls.categories, categories, name)
            self.assertEqual(cls.aggregation, aggregation, name)
            self.assertIs(cls.payload_type, payload, name)
            self.assertEqual(cls.is_absolute, "absolute" in categories)
            self.assertEqual(cls.is_contractive, "contractive" in categories)
            self.assertEqual(cls.is_unbiased, "unbiased" in categories)

    def test_bounds(self):
        self.assertEqual(gc.top_k(k=10).delta(1000), 0.01)
        self.assertEqual(gc.scaled_sign().delta(50), 1 / 50)
        self.assertEqual(gc.blockwise_sign(block_size=8).delta(1000), 1 / 8)
        self.assertEqual(gc.onebit().delta(50), 1 / 50)
        self.assertEqual(gc.onebit(block_size=8).delta(1000), 1 / 8)
        self.assertEqual(gc.unbiased_random_k(k=10).omega(1000), 99.0)
        self.assertEqual(gc.terngrad().omega(100), 9.0)
        self.assertEqual(gc.dithering(s=4).omega(100), 2.5)  # min(d/s^2, sqrt(d)/s)
        self.assertEqual(gc.dithering(s=4, partition="natural").omega(16), 0.375)  # 1/8 + a min(1, a), a = 1/2
        self.assertFalse(hasattr(gc.sign(), "delta") or hasattr(gc.sign(), "omega"))
        # Absolute bounds are rounded up (never below d * lambda^2, d q^2 / 4).
        self.assertGreaterEqual(gc.hard_threshold(0.5).absolute_bound(4), 1.0)
        self.assertAlmostEqual(gc.hard_threshold(0.5).absolute_bound(4), 1.0, places=12)
        self.assertGreaterEqual(gc.grid_rounding(spacing=2.0).absolute_bound(3), 3.0)
        self.assertAlmostEqual(gc.grid_rounding(spacing=2.0).absolute_bound(3), 3.0, places=12)
        self.assertFalse(hasattr(gc.top_k(k=1), "omega"))
        self.assertEqual(gc.hard_threshold.matching_top_k(100).lambda_, 0.05)

    def test_onebit(self):
        c = gc.onebit()
        self.assertEqual(c.block_size, gc.onebit.whole)
        self.assertEqual(gc.onebit.whole, 2**64 - 1)
        self.assertEqual(repr(c), "onebit()")
        self.assertEqual(repr(gc.onebit(block_size=3)), "onebit(block_size=3)")
        x = np.array([1, -2, 3, -4, 5, -6, 8], np.float32)
        m = gc.compress(c, x)
        self.assertIsInstance(m, gc.two_level_vector)
        self.assertEqual((m.dim, m.block_size, m.sent_elements), (7, gc.onebit.whole, 7))
        self.assertEqual((m.lows.tolist(), m.highs.tolist()), ([-4.0], [4.25]))
        self.assertEqual(m.to_dense().tolist(), [4.25, -4, 4.25, -4, 4.25, -4, 4.25])
        m = gc.compress(gc.onebit(block_size=3), x, policy="seq")
        self.assertEqual((m.lows.tolist(), m.highs.tolist()), ([-2.0, -5.0, 0.0], [2.0, 5.0, 8.0]))
        self.assertEqual(m.wire_bytes, 24 + 2 * 3 * 4 + 1)
        self.assertEqual(gc.two_level_vector.decode(m.encode()), m)
        with self.assertRaisesRegex(gc.Error, "onebit: block_size must be >= 1"):
            gc.onebit(block_size=0)

    def test_parameters_and_repr(self):
        c = gc.qsgd(s=4, seed=9)
        self.assertEqual((c.s, c.seed, c.step), (4, 9, 0))
        self.assertEqual(repr(c), "qsgd(s=4, seed=9, step=0)")
        self.assertEqual(repr(gc.hard_threshold(lambda_=0.25)), "hard_threshold(lambda_=0.25)")
        self.assertEqual(repr(gc.sign()), "sign()")
        self.assertEqual(repr(gc.sign(scale=0.125)), "sign(scale=0.125)")
        self.assertEqual(gc.compress(gc.sign(scale=0.125), np.array([2, -3], np.float32)).scales.tolist(), [0.125])
        r = gc.random_k(k=3, seed=1)
        gc.compress(r, np.ones(10, np.float32))
        self.assertEqual(r.step, 1)  # seeded compressors advance, as in C++
        self.assertEqual(copy.copy(r).step, 1)
        d = gc.dithering(s=3, partition="natural", norm="l2", seed=2)
        self.assertEqual(repr(d), "dithering(s=3, partition='natural', norm='l2', seed=2, step=0)")
        self.assertEqual((d.partition, d.norm), ("natural", "l2"))
        m = gc.compress(d, np.array([1.0, -0.5, 0.0, 0.25], np.float32))
        self.assertEqual(m.coding, "power_of_two")
        self.assertTrue(set(np.abs(m.levels).tolist()) <= {0, 1, 2, 4, 8})
        self.assertEqual(gc.compress(gc.dithering(s=3), np.ones(4, np.float32)).coding, "linear")
        d.partition = "linear"
        self.assertEqual(d.partition, "linear")

    def test_bad_parameters_raise_at_construction(self):
        with self.assertRaisesRegex(gc.Error, "k must be >= 1"):
            gc.top_k(k=0)
        with self.assertRaisesRegex(gc.Error, "lambda must be >= 0"):
            gc.hard_threshold(-1.0)
        with self.assertRaisesRegex(gc.Error, "spacing must be > 0"):
            gc.grid_rounding(spacing=0.0)
        with self.assertRaisesRegex(gc.Error, "block_size must be >= 1"):
            gc.blockwise_sign(block_size=0)
        with self.assertRaisesRegex(gc.Error, r"s \(number of levels\) must be >= 1"):
            gc.qsgd(s=0)
        with self.assertRaisesRegex(gc.Error, "<= 30 for the natural partition"):
            gc.dithering(s=31, partition="natural")
        with self.assertRaisesRegex(gc.Error, "partition must be \"linear\" or \"natural\""):
            gc.dithering(partition="log")
        with self.assertRaisesRegex(gc.Error, "norm must be \"max\" or \"l2\""):
            gc.dithering(norm="l1")
        with self.assertRaisesRegex(gc.Error, "scale must be finite and > 0"):
            gc.sign(scale=0.0)
        self.assertTrue(issubclass(gc.Error, ValueError))


class TestPayloads(unittest.TestCase):
    def messages(self):
        x = inputs("normal", 300, 1, 3)[0]
        return [gc.compress(make(), x) for _, make in SPECS]

    def test_round_trips(self):
        for m in self.messages():
            kind = type(m)
            with self.subTest(kind=kind.__name__):
                wire = m.encode()
                self.assertEqual(len(wire), m.wire_bytes)
                self.assertEqual(kind.decode(wire), m)
                self.assertEqual(gc.decode(wire, kind), m)
                self.assertEqual(kind.decode(bytearray(wire)), m)
                self.assertEqual(kind.decode(np.frombuffer(wire, dtype=np.uint8)), m)
                t = torch.zeros(m.wire_bytes + 5, dtype=torch.uint8)
                self.assertEqual(m.encode_into(t), m.wire_bytes)
                self.assertEqual(bytes(t[:m.wire_bytes].numpy()), wire)
                self.assertEqual(kind.decode(t[:m.wire_bytes]), m)
                self.assertEqual(pickle.loads(pickle.dumps(m)), m)
                dense = np.zeros(m.dim, np.float32)
                gc.decompress_add(m, dense)
                np.testing.assert_array_equal(dense, m.to_dense())

    def test_malformed_bytes_raise(self):
        wire = gc.compress(gc.top_k(k=3), np.arange(10, dtype=np.float32)).encode()
        with self.assertRaisesRegex(gc.Error, "decode<sparse_vector>"):
            gc.sparse_vector.decode(wire[:-1])
        with self.assertRaises(gc.Error):
            gc.dense_vector.decode(wire)  # another kind of message
        with self.assertRaisesRegex(TypeError, "payload_type must be one of"):
            gc.decode(wire, int)

    def test_sparse_fields_and_constructor(self):
        m = gc.compress(gc.top_k(k=2), np.array([0, -5, 1, 4], np.float32))
        np.testing.assert_array_equal(m.indices, [1, 3])
        np.testing.assert_array_equal(m.values, [-5, 4])
        self.assertEqual((m.dim, m.nnz, m.sent_elements), (4, 2, 2))
        self.assertEqual(gc.sparse_vector(4, [1, 3], np.array([-5, 4], np.float32)), m)
        with self.assertRaisesRegex(gc.Error, "not strictly ascending"):
            gc.sparse_vector(4, [3, 1], np.array([1, 2], np.float32))

    def test_summation_of_allreduce_messages(self):
        x = np.arange(20, dtype=np.float32)
        a = gc.compress(gc.random_k(k=4, seed=1), x)
        b = gc.compress(gc.random_k(k=4, seed=1), -2 * x)
        self.assertEqual(a.summation_key, b.summation_key)
        total = a.with_values(a.values + b.values)
        np.testing.assert_array_equal(total.to_dense(), a.to_dense() + b.to_dense())
        with self.assertRaisesRegex(ValueError, "values has 3 elements, the message has 4"):
            a.with_values(np.zeros(3, np.float32))
        self.assertFalse(hasattr(gc.sparse_vector, "with_values"))


class TestErrorFeedback(unittest.TestCase):
    def test_undo_assign_reset_metrics(self):
        ef = gc.ErrorFeedback(gc.top_k(k=1), 4)
        g = np.array([1, -3, 2, 0.5], np.float32)
        m = ef.compress(g)
        np.testing.assert_array_equal(m.indices, [1])
        np.testing.assert_array_equal(ef.error, [1, 0, 2, 0.5])
        self.assertEqual(ef.metrics, {"steps": 1, "elements_sent": 1, "wire_bytes": m.wire_bytes, "total_error": 5.25})
        self.assertTrue(ef.can_undo)
        ef.undo()
        np.testing.assert_array_equal(ef.error, [0, 0, 0, 0])
        self.assertEqual(ef.metrics["steps"], 0)
        ef.assign_error(np.array([0.25, -1, 0, 7], np.float32))
        self.assertEqual(ef.compress(g).values.tolist(), [7.5])
        ef.reset()
        self.assertEqual(ef.metrics["steps"], 0)
        np.testing.assert_array_equal(ef.error, [0, 0, 0, 0])
        self.assertEqual(ef.compressor.k, 1)
        self.assertEqual(ef.storage, "double_buffered")
        inplace = gc.ErrorFeedback(gc.top_k(k=1), 4, storage="in_place")
        inplace.compress(g)
        with self.assertRaisesRegex(gc.Error, "in place and keeps nothing to undo"):
            inplace.undo()

    def test_non_finite_input_changes_nothing(self):
        ef = gc.ErrorFeedback(gc.hard_threshold(1.0), 3)
        ef.compress(np.array([0.5, 2, -0.25], np.float32))
        before, metrics = ef.error.copy(), ef.metrics
        with self.assertRaisesRegex(gc.Error, r"x\[1\] = inf is not finite"):
            ef.compress(np.array([0, np.inf, 0], np.float32))
        np.testing.assert_array_equal(ef.error, before)
        self.assertEqual(ef.metrics, metrics)

    def test_state_dict_round_trip_and_rejections(self):
        ef = gc.ErrorFeedback(gc.random_k(k=2, seed=4), 10)
        for t in range(3):
            ef.compress(np.full(10, t + 1, np.float32))
        state = pickle.loads(pickle.dumps(ef.state_dict()))
        other = gc.ErrorFeedback(gc.random_k(k=2, seed=4), 10)
        other.load_state_dict(state)
        np.testing.assert_array_equal(other.error, ef.error)
        self.assertEqual(other.metrics, ef.metrics)
        self.assertEqual(other.compressor.step, 3)  # the seeded step is part of the state
        g = np.arange(10, dtype=np.float32)
        self.assertEqual(other.compress(g), ef.compress(g))

        with self.assertRaisesRegex(ValueError, "the state is for random_k, this ErrorFeedback wraps top_k"):
            gc.ErrorFeedback(gc.top_k(k=2), 10).load_state_dict(state)
        wrong_dim = gc.ErrorFeedback(gc.random_k(k=2, seed=4), 11)
        with self.assertRaisesRegex(gc.Error, "dim"):
            wrong_dim.load_state_dict(state)
        corrupted = dict(state, checkpoint=state["checkpoint"][:-3] + b"\x00\x01\x02")
        with self.assertRaises(gc.Error):
            other.load_state_dict(corrupted)
        with self.assertRaisesRegex(ValueError, "has no 'checkpoint' entry"):
            other.load_state_dict({k: v for k, v in state.items() if k != "checkpoint"})
        np.testing.assert_array_equal(wrong_dim.error, np.zeros(11, np.float32))


class TestBadInput(unittest.TestCase):
    """Everything a user can pass wrong is a Python exception that says what and how to fix it."""

    def test_wrong_dtype(self):
        c = gc.top_k(k=1)
        with self.assertRaisesRegex(TypeError, r"x has dtype float64, expected float32 \(convert with \.float\(\)"):
            gc.compress(c, np.zeros(4))
        with self.assertRaisesRegex(TypeError, "x has dtype float16, expected float32"):
            gc.compress(c, torch.zeros(4, dtype=torch.float16))
        with self.assertRaisesRegex(TypeError, "x has dtype bfloat16, expected float32"):
            gc.compress(c, torch.zeros(4, dtype=torch.bfloat16))
        with self.assertRaisesRegex(TypeError, "x has dtype int32, expected float32"):
            gc.compress(c, torch.zeros(4, dtype=torch.int32))
        with self.assertRaisesRegex(TypeError, "data has dtype float32, expected uint8"):
            gc.sparse_vector.decode(torch.zeros(4))
        with self.assertRaisesRegex(TypeError, "must be a tensor or an array"):
            gc.compress(c, [1.0, 2.0])

    def test_not_contiguous(self):
        c = gc.top_k(k=1)
        with self.assertRaisesRegex(ValueError, r"x is not contiguous \(shape \(3, 2\), strides \(1, 3\)"):
            gc.compress(c, torch.zeros(2, 3).t())
        with self.assertRaisesRegex(ValueError, "x is not contiguous"):
            gc.compress(c, np.zeros(10, np.float32)[::2])
        ef = gc.ErrorFeedback(c, 5)
        with self.assertRaisesRegex(ValueError, "g is not contiguous"):
            ef.compress(torch.zeros(10)[::2])
        # Contiguous tensors of any shape are read as flat vectors.
        self.assertEqual(gc.compress(c, torch.arange(6.0).reshape(2, 3)).indices.tolist(), [5])

    def test_size_mismatch(self):
        ef = gc.ErrorFeedback(gc.top_k(k=1), 5)
        with self.assertRaisesRegex(gc.Error, "input size 4 does not match the residual dimension 5"):
            ef.compress(torch.zeros(4))
        m = gc.compress(gc.top_k(k=1), np.ones(5, np.float32))
        with self.assertRaisesRegex(ValueError, "out has 4 elements, the message has dim 5"):
            m.decompress_add(torch.zeros(4))
        with self.assertRaisesRegex(ValueError, r"out has 3 bytes, the message needs \d+"):
            m.encode_into(torch.zeros(3, dtype=torch.uint8))
        with self.assertRaisesRegex(gc.Error, "got 4 values for a residual of dimension 5"):
            ef.assign_error(np.zeros(4, np.float32))

    def test_read_only_output(self):
        m = gc.compress(gc.top_k(k=1), np.ones(5, np.float32))
        ro = np.zeros(5, np.float32)
        ro.setflags(write=False)
        with self.assertRaisesRegex(ValueError, "out is read-only"):
            m.decompress_add(ro)
        self.assertEqual(gc.compress(gc.top_k(k=1), ro).sent_elements, 1)  # reading it is fine

    def test_device_and_arguments(self):
        class FakeCuda:
            def __dlpack_device__(self):
                return (2, 0)

            def __dlpack__(self, stream=None):
                raise AssertionError("a CUDA tensor must not be exported by a CPU-only build")

        with self.assertRaisesRegex(TypeError, "x is on CUDA device 0; gradcomp's host functions take host tensors"):
            gc.compress(gc.top_k(k=1), FakeCuda())
        with self.assertRaisesRegex(ValueError, "policy must be 'par'"):
            gc.compress(gc.top_k(k=1), np.ones(3, np.float32), policy="gpu")
        with self.assertRaisesRegex(ValueError, "storage must be 'double_buffered' or 'in_place'"):
            gc.ErrorFeedback(gc.top_k(k=1), 3, storage="single")
        with self.assertRaisesRegex(TypeError, "compressor must be a gradcomp compressor"):
            gc.ErrorFeedback("top_k", 3)
        with self.assertRaisesRegex(RuntimeError, "require"):
            gc.compress(gc.top_k(k=1), torch.ones(3, requires_grad=True))


class TestMemory(unittest.TestCase):
    def test_in_place_without_copies(self):
        m = gc.compress(gc.top_k(k=2), np.array([0, 3, 0, -4], np.float32))
        t = torch.ones(4)
        ptr = t.data_ptr()
        m.decompress_add(t, -1.0)
        self.assertEqual(t.data_ptr(), ptr)
        self.assertEqual(t.tolist(), [1, -2, 1, 5])
        a = np.ones(4, np.float32)
        m.decompress_add(a, 2.0)
        self.assertEqual(a.tolist(), [1, 7, 1, -7])
        view = torch.zeros(8)[2:6]  # an offset view: DLPack's byte_offset / data pointer
        m.decompress_add(view)
        self.assertEqual(view.tolist(), [0, 3, 0, -4])

    def test_calls_release_the_gil(self):
        x = np.random.default_rng(0).standard_normal(1 << 23).astype(np.float32)
        c = gc.top_k(k=1000)
        gc.compress(c, x)  # warm up the thread pool
        done = threading.Event()
        ticks = 0

        def work():
            for _ in range(3):
                gc.compress(c, x)
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        while not done.is_set():
            ticks += 1
        worker.join()
        # With the GIL held for the whole compress, this thread could only tick between calls.
        self.assertGreater(ticks, 1000)


class TestCudaBoundary(unittest.TestCase):
    """What gradcomp.cuda does on every machine (tests/python/cuda_check.py runs it on a GPU)."""

    def test_availability_is_reported(self):
        import gradcomp.cuda as gcc
        built = gc._core.cuda_built()
        self.assertIsInstance(built, bool)
        self.assertEqual(gcc.available(), built and gc._core.cuda_device_count() > 0 and torch.cuda.is_available())
        if not torch.cuda.is_available():
            with self.assertRaisesRegex(RuntimeError, "without its CUDA back end" if not built else "no CUDA device"):
                gcc.ErrorFeedback(gc.top_k(k=3), 10)

    def test_device_feedback_says_why_it_cannot_start(self):
        with self.assertRaisesRegex(TypeError, "no CUDA kernel for identity"):
            gc._core.CudaErrorFeedback(gc.identity(), 10)
        if not gc._core.cuda_built():
            with self.assertRaisesRegex(RuntimeError, "no CUDA back end"):
                gc._core.CudaErrorFeedback(gc.top_k(k=3), 10)
        elif gc._core.cuda_device_count() == 0:  # built with CUDA, no device (CI): the runtime's error
            with self.assertRaisesRegex(RuntimeError, "gradcomp::cuda"):
                gc._core.CudaErrorFeedback(gc.top_k(k=3), 10)
        else:
            with self.assertRaisesRegex(TypeError, "float32, bfloat16 or float16"):
                gc._core.CudaErrorFeedback(gc.top_k(k=3), 10).compress(0, "float64")


if __name__ == "__main__":
    unittest.main()
