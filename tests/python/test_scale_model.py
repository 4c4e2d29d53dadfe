"""scripts/scale_model.py: the alpha-beta cost model of gradcomp's exchanges (docs/scaling.md).

Standard library only (the model needs nothing else; only its `plot` command imports
matplotlib, and it is not run here). Every expected number below was worked out by hand from
the rules in docs/scaling.md, not by running the model. Run from the repository root or from
tests/python:

    python3 -m unittest tests/python/test_scale_model.py -v
"""
import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

import scale_model as sm  # noqa: E402
import scale_model_layers as layers  # noqa: E402

TRACES = os.path.join(HERE, "scale_model_traces")


class Shapes(unittest.TestCase):
    def test_mlp(self):
        ts = layers.mlp()
        self.assertEqual([t.shape for t in ts], [(128, 784), (128,), (10, 128), (10,)])
        self.assertEqual(sum(t.size for t in ts), 101_770)

    def test_resnet50_is_torchvisions(self):
        ts = layers.resnet50()
        self.assertEqual(sum(t.size for t in ts), 25_557_032)
        self.assertEqual(len(ts), 161)  # torchvision's resnet50 has 161 parameter tensors
        self.assertEqual(ts[0].shape, (64, 3, 7, 7))
        self.assertEqual(ts[-2].shape, (1000, 2048))
        names = {t.name: t.shape for t in ts}
        self.assertEqual(names["layer1.0.downsample.0.weight"], (256, 64, 1, 1))
        self.assertEqual(names["layer2.0.conv2.weight"], (128, 128, 3, 3))
        self.assertEqual(names["layer4.2.conv3.weight"], (2048, 512, 1, 1))
        self.assertNotIn("layer1.1.downsample.0.weight", names)

    def test_bert_large(self):
        ts = layers.bert_large()
        self.assertEqual(sum(t.size for t in ts), 335_141_888)
        self.assertEqual(len(ts), 5 + 24 * 16 + 2)
        # By formula, written out: embeddings, 24 layers, pooler.
        emb = (30522 + 512 + 2) * 1024 + 2 * 1024
        layer = 4 * (1024 * 1024 + 1024) + 2 * 1024 + (4096 * 1024 + 4096) + (1024 * 4096 + 1024) + 2 * 1024
        self.assertEqual((emb, layer), (31_782_912, 12_596_224))
        self.assertEqual(emb + 24 * layer + 1024 * 1024 + 1024, 335_141_888)
        self.assertEqual(layers.bert_large_total_by_formula(), 335_141_888)
        self.assertEqual(sum(t.size for t in layers.bert_large(heads=True)), 336_226_108)

    def test_matrix_view(self):
        self.assertEqual(layers.Tensor("c", (256, 64, 3, 3), 0).matrix(), (256, 576))
        self.assertEqual(layers.Tensor("b", (128,), 0).matrix(), (128, 1))


class Bytes(unittest.TestCase):
    def test_wire_formats(self):
        self.assertEqual(sm.sparse_wire_bytes(0), 24)
        self.assertEqual(sm.sparse_wire_bytes(1017), 8160)  # the MLP's 1% message
        self.assertEqual(sm.dense_wire_bytes(10), 56)

    def test_block_rule(self):
        self.assertEqual(sm.block_bytes(0, 100), 0)
        self.assertEqual(sm.block_bytes(1, 100), 9)          # 1 + (4 + 4)
        self.assertEqual(sm.block_bytes(12, 100), 97)        # sparse: 96 < 400
        self.assertEqual(sm.block_bytes(50, 100), 1 + 400)   # 400 < 400? no: 400 = 400, either is 400
        self.assertEqual(sm.block_bytes(51, 100), 401)       # dense: 400 < 408
        self.assertEqual(sm.block_bytes(5, 8), 33)           # dense: 32 < 40
        self.assertEqual(sm.block_bytes(3, 2**32), 25)       # 4-byte indices up to 2^32
        self.assertEqual(sm.block_bytes(3, 2**32 + 1), 37)   # 8-byte indices beyond
        with self.assertRaises(ValueError):
            sm.block_bytes(11, 10)

    def test_k_and_shards(self):
        self.assertEqual(sm.k_of(0.01, 101_770), 1017)
        self.assertEqual(sm.k_of(1e-9, 10), 1)
        self.assertEqual([sm.shard(10, 4, r) for r in range(4)], [3, 3, 2, 2])

    def test_docs_distributed_measured_bytes(self):
        """docs/distributed.md's 300-step, 4-rank MLP runs (bytes per worker, mean over ranks):
        dense 122.1 MB; ef_sgd Top-k 1% 2.45 / 7.34 MB; double_squeeze single 1.84 / 1.84 MB;
        liec_sgd H = 32, single 9.11 / 11.86 MB. Those are measured traffic_log totals."""
        d, P, steps = 101_770, 4, 300
        up, down = sm.mean_bytes(sm.dense_bytes(P, d))
        self.assertEqual(round(steps * up / 1e5), 1221)
        up, down = sm.mean_bytes(sm.allgather_topk_bytes(P, sm.k_of(0.01, d)))
        self.assertEqual((steps * up, steps * down), (2_448_000, 7_344_000))
        up, down = sm.mean_bytes(sm.double_squeeze_bytes(P, d, 0.01, server="single"))
        self.assertEqual((steps * up, steps * down), (1_836_000, 1_836_000))
        # LIEC-SGD: steps 32, 64, ..., 288 synchronise (9), the other 291 are compressed.
        comp = sm.mean_bytes(sm.double_squeeze_bytes(P, d, 0.01, server="single"))
        sync = sm.mean_bytes(sm.liec_sync_bytes(P, d, server="single"))
        total_up = 291 * comp[0] + 9 * sync[0]
        total_down = 291 * comp[1] + 9 * sync[1]
        self.assertEqual((round(total_up / 1e4), round(total_down / 1e4)), (911, 1186))

    def test_double_squeeze_sharded(self):
        # d = 10, P = 4: shards 3, 3, 2, 2; k_s = max(1, floor(0.5 * 2)) = 1 per shard.
        per = sm.double_squeeze_bytes(4, 10, 0.5)
        self.assertEqual(per, [(96, 96)] * 4)  # 3 other shards x (24 + 8)

    def test_powersgd_mlp(self):
        # r = 4: W1 128x784 -> 4*128 + 4*784; b1 uncompressed (4*(128+1) > 128); W2 10x128 ->
        # 4*10 + 4*128; b2 uncompressed. First all-reduce 512 + 128 + 40 + 10, second 3136 + 512.
        self.assertEqual(sm.powersgd_split(layers.mlp(), 4), (690, 3648))
        self.assertEqual(sm.powersgd_bytes(2, layers.mlp(), 4)[0], (17_352, 17_352))


class Collectives(unittest.TestCase):
    L = sm.Link(alpha=1e-6, beta=1e-9)  # 1 us, 1 GB/s

    def test_allreduce_algorithms(self):
        n = 1e6
        self.assertAlmostEqual(sm.ring_allreduce(4, n, self.L), 6e-6 + 1.5e-3)
        self.assertAlmostEqual(sm.recursive_doubling_allreduce(4, n, self.L), 2 * (1e-6 + 1e-3))
        self.assertAlmostEqual(sm.rabenseifner_allreduce(4, n, self.L), 4e-6 + 1.5e-3)
        self.assertAlmostEqual(sm.tuned_allreduce(4, n, self.L), 4e-6 + 1.5e-3)
        # P = 6: the fold (2 (alpha + n beta)) makes the ring the best.
        self.assertAlmostEqual(sm.rabenseifner_allreduce(6, n, self.L), 4e-6 + 1.5e-3 + 2e-6 + 2e-3)
        self.assertAlmostEqual(sm.ring_allreduce(6, n, self.L), 10e-6 + 10 / 6 * 1e-3)
        self.assertAlmostEqual(sm.tuned_allreduce(6, n, self.L), 10e-6 + 10 / 6 * 1e-3)
        # Small messages: recursive doubling (log2 P alpha) beats the ring's 2 (P-1) alpha.
        self.assertAlmostEqual(sm.tuned_allreduce(8, 8, self.L), 3 * (1e-6 + 8e-9))
        self.assertEqual(sm.tuned_allreduce(1, n, self.L), 0.0)

    def test_reduce_scatter_allgather_alltoall(self):
        self.assertAlmostEqual(sm.ring_reduce_scatter(4, 4e6, self.L), 3e-6 + 3e-3)
        self.assertAlmostEqual(sm.ring_allgather(4, 4e6, self.L), 3e-6 + 3e-3)
        L = sm.Link(alpha=1.0, beta=0.01)
        # ring 3 (1 + 4) = 15, Bruck 2 + (1000 - 100) 0.01 = 11
        self.assertAlmostEqual(sm.allgatherv([100, 200, 300, 400], L), 11.0)
        self.assertAlmostEqual(sm.alltoallv_pairwise(5, 300, 500, L), 4 + 5.0)

    def test_two_level(self):
        intra, inter = sm.Link(1e-6, 1 / 400e9), sm.Link(5e-6, 1 / 50e9)
        topo = sm.Topology("t", 8, intra, inter)
        n = 1e8
        expect = (7e-6 + 7 / 8 * n / 400e9) * 2 + sm.tuned_allreduce(2, n / 8, inter)
        self.assertAlmostEqual(sm.dense_allreduce_time(16, n, topo), expect)
        self.assertAlmostEqual(sm.dense_allreduce_time(4, n, topo), sm.tuned_allreduce(4, n, intra))
        flat = sm.Topology("f", 1, intra, inter)
        self.assertAlmostEqual(sm.dense_allreduce_time(16, n, flat), sm.tuned_allreduce(16, n, inter))


class ReduceScatter(unittest.TestCase):
    def test_p3_by_hand(self):
        # d = 30, k = 6, P = 3: regions 10, 10, 10; each rank has 2 entries per region,
        # block(2, 10) = 17.
        # Histogram rounds are 256 float counts (1024 bytes) for d <= 2^24.
        same = sm.Params(overlap=1.0)  # identical sets: 6 nonzero sums <= k, so R = 1 (the total)
        self.assertEqual(sm.reduce_scatter_bytes(3, 30, 6, same), [(2 * 17 + 1024 + 17, 2 * 17 + 1024 + 2 * 17)] * 3)
        apart = sm.Params(overlap=0.0, histogram_rounds=4)  # 18 nonzero sums > k: R = 4
        self.assertEqual(sm.reduce_scatter_bytes(3, 30, 6, apart), [(34 + 4096 + 17, 34 + 4096 + 34)] * 3)
        tie = sm.Params(overlap=0.0, histogram_rounds=2, tie_round=True)
        self.assertEqual(sm.reduce_scatter_bytes(3, 30, 6, tie), [(34 + 2048 + 17 + 8, 34 + 2048 + 34 + 16)] * 3)
        self.assertEqual(sm.reduce_scatter_bytes(1, 30, 6, same), [(0, 0)])

    def test_uneven_split(self):
        # d = 10, k = 4, P = 3: regions 4, 3, 3; n_{i,r} = 2, 1, 1; R = 1 (identical sets: the
        # first round's total is <= k), s = 2, 1, 1. Rank 0: up = block(1,3) * 2 + block(2,4)
        # = 9 + 9 + 17, plus 1024; down = 2 block(2,4) + 2 block(1,3), plus 1024.
        per = sm.reduce_scatter_bytes(3, 10, 4, sm.Params(overlap=1.0))
        self.assertEqual(per[0], (35 + 1024, 52 + 1024))
        self.assertEqual(per[1], (17 + 9 + 9 + 1024, 9 + 9 + 17 + 9 + 1024))

    def test_bytes_grow_as_k_not_kP(self):
        d = 25_557_032
        k = sm.k_of(0.01, d)
        prm = sm.Params(overlap=0.0)  # the worst case for the union
        rs = {P: sm.mean_bytes(sm.reduce_scatter_bytes(P, d, k, prm))[1] for P in (16, 64, 256, 1024)}
        ag = {P: sm.mean_bytes(sm.allgather_topk_bytes(P, k))[1] for P in (16, 64, 256, 1024)}
        for P in rs:  # O(k): about 2 x 8k, whatever P
            self.assertLess(rs[P], 2 * 8 * k + 64 * P + 4 * 2048)
            self.assertGreater(rs[P], 2 * 8 * k * (P - 1) / P)
        self.assertLess(rs[1024] / rs[16], 1.1)
        self.assertAlmostEqual(ag[1024] / ag[16], 1023 / 15)  # O(kP)
        self.assertEqual(ag[1024], 1023 * (24 + 8 * k))


class RecursiveDoubling(unittest.TestCase):
    def test_p4_by_hand(self):
        # d = 16, k = 5: round 0 each sends 5 entries (41 bytes); round 1 the union of two sets.
        disjoint = sm.recursive_doubling_bytes(4, 16, 5, sm.Params(overlap=0.0))
        self.assertEqual(disjoint, [(41 + 65, 41 + 65)] * 4)  # 10 entries: dense, 1 + 64
        same = sm.recursive_doubling_bytes(4, 16, 5, sm.Params(overlap=1.0))
        self.assertEqual(same, [(82, 82)] * 4)

    def test_p3_fold_by_hand(self):
        # P = 3: P' = 2, rem = 1. Rank 0 folds its 3 entries into rank 1 (25 bytes); ranks 1 and
        # 2 exchange (rank 1 holds the union of two sets: 6 disjoint entries, 49 bytes; rank 2
        # its own 3, 25 bytes); rank 1 unfolds |S| = k = 3 entries to rank 0 (25 bytes).
        msgs = sm.recursive_doubling_messages(3, 16, 3, sm.Params(overlap=0.0))
        self.assertEqual(msgs, [("fold", 0, 1, 3, 16), ("round", 1, 2, 6, 16), ("round", 2, 1, 3, 16),
                                ("unfold", 1, 0, 3, 16)])
        self.assertEqual(sm.recursive_doubling_bytes(3, 16, 3, sm.Params(overlap=0.0)),
                         [(25, 25), (49 + 25, 25 + 25), (25, 49)])

    def test_p6_layout(self):
        # P = 6: P' = 4, rem = 2; virtual ranks 0, 1 are the pairs (0, 1), (2, 3) held by real
        # ranks 1, 3; virtual 2, 3 are real 4, 5.
        self.assertEqual([sm.rd_virtual(i, 2) for i in range(6)], [None, 0, None, 1, 2, 3])
        self.assertEqual([sm.rd_real(v, 2) for v in range(4)], [1, 3, 4, 5])
        self.assertEqual([sm.rd_covered(v, 0, 2) for v in range(4)], [2, 2, 1, 1])
        self.assertEqual([sm.rd_covered(v, 1, 2) for v in range(4)], [4, 4, 2, 2])
        rounds = [(m[1], m[2]) for m in sm.recursive_doubling_messages(6, 100, 4, sm.Params()) if m[0] == "round"]
        self.assertEqual(rounds, [(1, 3), (3, 1), (4, 5), (5, 4), (1, 4), (3, 5), (4, 1), (5, 3)])

    def test_union_model(self):
        self.assertEqual(sm.union_size(1, 5, 100, 0.0), 5)
        self.assertEqual(sm.union_size(8, 5, 100, 0.0), 40)
        self.assertEqual(sm.union_size(64, 5, 100, 0.0), 100)   # capped at d
        self.assertEqual(sm.union_size(64, 5, 100, 1.0), 5)
        self.assertEqual(sm.union_size(4, 100, 10**6, 0.5), round(100 * 1.5**2))
        self.assertAlmostEqual(sm.overlap_from_union(4, 100, 225), 0.5)


class StepModel(unittest.TestCase):
    def setUp(self):
        intra, inter = sm.Link(1e-6, 1 / 450e9), sm.Link(5e-6, 1 / 50e9)
        self.flat = sm.Topology("flat", 1, intra, inter)
        self.two = sm.Topology("two_level", 8, intra, inter)
        self.cc = sm.ComputeCosts()

    def test_buckets(self):
        ts = layers.resnet50()
        buckets = sm.ddp_buckets(ts)
        self.assertEqual(sorted(i for b in buckets for i in b), list(range(len(ts))))
        self.assertEqual(buckets[0][0], len(ts) - 1)  # the fc bias is ready first
        sizes = [4 * sum(ts[i].size for i in b) for b in buckets]
        self.assertGreaterEqual(sizes[0], 1 << 20)
        self.assertTrue(all(s >= 25 << 20 for s in sizes[1:-1]))
        self.assertEqual(len(sm.ddp_buckets(layers.mlp())), 1)  # 407 KB: one bucket

    def test_step_time_is_compute_plus_exposed(self):
        spec = sm.MODEL_SPECS["resnet50"]
        for scheme in sm.SCHEMES:
            for topo in (self.flat, self.two):
                st = sm.step_time(scheme, 64, spec, topo, self.cc, sm.Params())
                self.assertGreaterEqual(st.total, (spec.forward_ms + spec.backward_ms) * 1e-3)
                self.assertAlmostEqual(st.total, st.forward + st.backward + st.compress + st.exposed)
                self.assertLessEqual(st.total, st.after_total + 1e-12)

    def test_no_overlap_for_the_mlp(self):
        # One bucket, ready at the end of backward: the exchange cannot hide.
        spec = sm.MODEL_SPECS["mlp"]
        st = sm.step_time("dense", 16, spec, self.flat, self.cc, sm.Params())
        x = sm.exchange_time("dense", 16, list(spec.tensors()), self.flat, self.cc, sm.Params())
        self.assertAlmostEqual(st.exposed, x.comm)

    def test_cli_table_and_bytes(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(sm.main(["table", "--models", "mlp", "--p", "2", "8", "--densities", "0.01", "--full"]), 0)
            self.assertEqual(sm.main(["bytes", "mlp", "4"]), 0)
        text = out.getvalue()
        self.assertIn("| mlp | 0.01 | flat |", text)
        self.assertIn("| dense all-reduce (tuned) | 407,080 | 407,080 |", text)


class Validator(unittest.TestCase):
    RUNS = ["rs3", "rd3", "rd4", "ag3", "dense2"]

    def run_validate(self, prefixes):
        return sm.validate([os.path.join(self.dir, p) if not os.path.isabs(p) else p for p in prefixes])

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for f in os.listdir(TRACES):
            shutil.copy(os.path.join(TRACES, f), self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def edit(self, name, step, fn):
        path = os.path.join(self.dir, name)
        with open(path) as fh:
            recs = [json.loads(line) for line in fh if line.strip()]
        for rec in recs:
            if rec["step"] == step:
                fn(rec)
        with open(path, "w") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in recs))

    def test_fixtures_pass(self):
        rep = self.run_validate(self.RUNS)
        self.assertEqual(rep.errors, [])
        self.assertEqual((rep.steps, rep.records), (3 + 1 + 1 + 1 + 1, 9 + 3 + 4 + 3 + 2))
        self.assertEqual(rep.closed_form, 2)  # the all-gather Top-k and the dense steps
        self.assertEqual(rep.exchanges, {"reduce_scatter", "recursive_doubling", "allgather"})

    def test_command_line(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.assertEqual(sm.main(["validate"] + [os.path.join(self.dir, p) for p in self.RUNS]), 0)
            self.edit("rs3.1.jsonl", 1, lambda r: r.update(down=r["down"] + 1))
            self.assertEqual(sm.main(["validate", os.path.join(self.dir, "rs3")]), 1)
        self.assertIn("OK: 7 steps", out.getvalue())
        self.assertIn("measured up 3106, down 3148", err.getvalue())

    def test_mismatched_up(self):
        self.edit("rd3.1.jsonl", 0, lambda r: r.update(up=67))
        rep = self.run_validate(["rd3"])
        self.assertEqual(len(rep.errors), 1)
        self.assertIn("the model gives up 66, down 50; measured up 67, down 50", rep.errors[0])

    def test_mismatched_message_bytes(self):
        def bump(rec):
            rec["messages"][3]["bytes"] = 50  # a reduce block of 6 entries in 12 floats is 49 bytes
            rec["down"] += 1
        self.edit("rs3.0.jsonl", 0, bump)
        rep = self.run_validate(["rs3"])
        self.assertTrue(any("traced 50 bytes, the rule for reduce(nnz=6, len=12) gives 49" in e for e in rep.errors))

    def test_dense_chosen_when_smaller(self):
        # rd4's 10-entry round messages over 16 floats are dense (65 bytes); 81 (sparse) fails.
        def sparse(rec):
            for m in rec["messages"]:
                if m["nnz"] == 10:
                    m["bytes"] = 81
        self.edit("rd4.2.jsonl", 0, sparse)
        rep = self.run_validate(["rd4"])
        self.assertTrue(any("gives 65" in e for e in rep.errors))

    def test_unmatched_send(self):
        def drop(rec):
            rec["messages"] = [m for m in rec["messages"] if not (m["phase"] == "gather" and m["peer"] == 2)]
            rec["down"] -= 9
        self.edit("rs3.0.jsonl", 2, drop)  # rank 0 no longer lists rank 2's selected sums
        rep = self.run_validate(["rs3"])
        self.assertTrue(any("gather from rank 2" in e for e in rep.errors), rep.errors)

    def test_wrong_round_partner(self):
        def swap(rec):
            rs = [m for m in rec["messages"] if m["phase"] == "round" and m["dir"] == "send"]
            rs[0]["peer"], rs[1]["peer"] = rs[1]["peer"], rs[0]["peer"]
        self.edit("rd4.0.jsonl", 0, swap)
        rep = self.run_validate(["rd4"])
        self.assertTrue(any("sent its rounds to [2, 1]" in e for e in rep.errors), rep.errors)

    def test_closed_form(self):
        # Three messages of 2 entries: the per-message rule and the closed form agree; a
        # message of another size is still per-message exact, but no longer Top-k.
        def grow(rec):
            rec["messages"][0]["nnz"], rec["messages"][0]["bytes"] = 3, 48
            rec["up"] = 48
        self.edit("ag3.0.jsonl", 0, grow)
        with open(os.path.join(self.dir, "ag3.1.jsonl")) as fh:
            rec1 = json.loads(fh.readline())
        rep = self.run_validate(["ag3"])
        self.assertTrue(any("rank 0 received" in e or "allgather from rank 0" in e for e in rep.errors), rep.errors)
        self.assertEqual(rec1["down"], 80)

    def test_per_peer_sends_count_once(self):
        # The same all-gather contribution written as one send to each other rank.
        for r in range(3):
            def per_peer(rec, r=r):
                send = rec["messages"][0]
                rec["messages"][0:1] = [dict(send, peer=p) for p in range(3) if p != r]
            self.edit(f"ag3.{r}.jsonl", 0, per_peer)
        rep = self.run_validate(["ag3"])
        self.assertEqual(rep.errors, [])
        self.assertEqual(rep.closed_form, 1)

    def test_missing_rank(self):
        os.remove(os.path.join(self.dir, "rd4.3.jsonl"))
        rep = self.run_validate(["rd4"])
        self.assertTrue(rep.errors)

    def test_estimate_overlap(self):
        # rd4: ranks 0, 1 grow 5 -> 7 entries (g = log2 1.4), ranks 2, 3 5 -> 10 (g = 1);
        # least squares through 0 gives the mean g.
        rho, g, n = sm.estimate_overlap([os.path.join(self.dir, "rd4")])
        self.assertEqual(n, 4)
        self.assertAlmostEqual(g, (math.log2(1.4) + 1) / 2)
        self.assertAlmostEqual(rho, 2 - 2**g)


if __name__ == "__main__":
    unittest.main()
