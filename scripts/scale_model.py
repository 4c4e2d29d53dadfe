#!/usr/bin/env python3
"""Does gradient compression pay? An alpha-beta cost model of gradcomp's exchanges.

Written to be read like a paper's appendix; docs/scaling.md states every formula again with
its sources, and the numbers it produced. Sections:

  1. Bytes, exactly as gradcomp's traffic_log counts them (payload/sparse.hpp, dense.hpp,
     detail/wire.hpp; docs/distributed.md "What the byte counts are"), and the "block" of the
     new sparse exchanges.
  2. Alpha-beta collectives: ring, recursive doubling, Rabenseifner, Bruck, pairwise
     all-to-all; a tuned dense all-reduce (the minimum over algorithms, as NCCL and MPI tune);
     a two-level topology (G GPUs per node on NVLink, nodes on a network).
  3. How much Top-k sets overlap across ranks (the one data-dependent quantity).
  4. The schemes: bytes per rank (flat, exactly) and time of one exchange (flat or two-level).
  5. Compression compute, from docs/performance.md's measured CPU figures.
  6. Overlap with backward, as PyTorch DDP does it (25 MB buckets, reverse order).
  7. The validator of measured traces (examples/mpi_training --trace PREFIX).
  8. Outputs: plots, CSV and markdown tables; the command line.

Commands (python3 scripts/scale_model.py --help for every option):

  plot --out DIR          bytes and time per step vs P, every model, 1% and 0.1%; PNG, CSV, markdown
  table                   where compression beats the tuned dense all-reduce with overlap
  bytes MODEL P           bytes per rank of every scheme, and the time breakdown
  validate PREFIX...      recompute every traced message's bytes and compare, exactly
  estimate-overlap PREFIX...  fit the overlap parameter to recursive-doubling traces
  simulate-overlap        estimate it for the MLP in numpy, on Fashion-MNIST (until traces exist)

Standard library only, except `plot` (matplotlib) and `simulate-overlap` (numpy).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import glob
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale_model_layers as layers  # noqa: E402

KIB, MIB = 1024, 1024 * 1024

# ============================================================================================
# 1. Bytes
# ============================================================================================
#
# Every encoded gradcomp payload opens with a 16-byte header (detail/wire.hpp). A
# sparse_vector<float> (uint32 indices) adds an 8-byte count and (4 + 4) bytes per entry:
#     wire(sparse, nnz) = 16 + 8 + 8 nnz                         (payload/sparse.hpp)
# A dense_vector<float> of n values:  wire(dense, n) = 16 + 4 n    (payload/dense.hpp)
# An allreduce-class exchange (identity, i.e. the dense all-reduce; PowerSGD's factors) counts
# the summed values only, 4 n each way (algorithms/ef_sgd.hpp, powersgd_sgd.hpp).
# The new sparse exchanges send "blocks": nnz entries of a region of length len cost
#     block(nnz, len) = 0                                  if nnz == 0
#                     = 1 + min(nnz (I + 4), 4 len)        otherwise, I = 4 if len <= 2^32 else 8
# (a 1-byte tag, then (relative index, float) pairs, or all len floats when that is smaller:
# dense iff 4 len < nnz (I + 4)).

HEADER_BYTES = 16
VALUE_BYTES = 4  # float32 gradients, as every figure here assumes


def sparse_wire_bytes(nnz: int, index_bytes: int = 4) -> int:
    """gc::wire_bytes of a sparse_vector<float> with nnz entries."""
    return HEADER_BYTES + 8 + nnz * (index_bytes + VALUE_BYTES)


def dense_wire_bytes(n: int) -> int:
    """gc::wire_bytes of a dense_vector<float> of n values."""
    return HEADER_BYTES + VALUE_BYTES * n


def block_bytes(nnz: int, length: int) -> int:
    """One block of the sparse reduce-scatter / recursive-doubling exchanges."""
    if nnz < 0 or length < 0 or nnz > length:
        raise ValueError(f"block: nnz {nnz} must be in [0, len {length}]")
    if nnz == 0:
        return 0
    index_bytes = 4 if length <= 2**32 else 8
    return 1 + min(nnz * (index_bytes + VALUE_BYTES), length * VALUE_BYTES)


def shard(total: int, parts: int, r: int) -> int:
    """Size of part r when `total` is split into `parts` contiguous parts whose sizes differ by
    at most one, the first total % parts parts one larger (comm::shard_of)."""
    base, extra = divmod(total, parts)
    return base + (1 if r < extra else 0)


def k_of(density: float, d: int) -> int:
    """Top-k's k for a density, as examples/mpi_training.cpp computes it: max(1, floor(density d))."""
    return max(1, int(density * d))


# ============================================================================================
# 2. Alpha-beta collectives
# ============================================================================================
#
# A message of n bytes between two ranks takes alpha + n beta. Links are full duplex: a rank
# sends and receives at once (a pairwise exchange of s and r bytes costs alpha + max(s, r) beta).
# P ranks, n the bytes of the whole vector on each rank.


@dataclass(frozen=True)
class Link:
    alpha: float  # seconds per message
    beta: float   # seconds per byte (1 / bandwidth per direction)


def log2_floor(p: int) -> int:
    return p.bit_length() - 1


def ring_allreduce(P: int, n: float, l: Link) -> float:
    """2 (P-1) alpha + 2 (P-1)/P n beta."""
    if P == 1:
        return 0.0
    return 2 * (P - 1) * l.alpha + 2 * (P - 1) / P * n * l.beta


def _fold_cost(P: int, n: float, l: Link) -> float:
    """MPICH's treatment of P not a power of two: the first 2 rem ranks pair up, the even one
    sends its vector to the odd one before (alpha + n beta) and receives the result after."""
    rem = P - (1 << log2_floor(P))
    return 2 * (l.alpha + n * l.beta) if rem else 0.0


def recursive_doubling_allreduce(P: int, n: float, l: Link) -> float:
    """log2(P') rounds, each exchanging the whole vector: log2 P' (alpha + n beta) (+ the fold)."""
    if P == 1:
        return 0.0
    q = log2_floor(P)
    return q * (l.alpha + n * l.beta) + _fold_cost(P, n, l)


def rabenseifner_allreduce(P: int, n: float, l: Link) -> float:
    """Recursive-halving reduce-scatter + recursive-doubling allgather:
    2 log2 P' alpha + 2 (P'-1)/P' n beta (+ the fold)."""
    if P == 1:
        return 0.0
    q = log2_floor(P)
    Pp = 1 << q
    return 2 * q * l.alpha + 2 * (Pp - 1) / Pp * n * l.beta + _fold_cost(P, n, l)


def tuned_allreduce(P: int, n: float, l: Link) -> float:
    """What a tuned library achieves: the best of ring, recursive doubling and Rabenseifner."""
    return min(ring_allreduce(P, n, l), recursive_doubling_allreduce(P, n, l), rabenseifner_allreduce(P, n, l))


def ring_reduce_scatter(P: int, n_total: float, l: Link) -> float:
    """(P-1) alpha + (P-1)/P n_total beta."""
    return 0.0 if P == 1 else (P - 1) * l.alpha + (P - 1) / P * n_total * l.beta


def ring_allgather(P: int, n_total: float, l: Link) -> float:
    """(P-1) alpha + (P-1)/P n_total beta (n_total: the gathered vector's bytes)."""
    return ring_reduce_scatter(P, n_total, l)


def allgatherv(blocks: list, l: Link) -> float:
    """Allgather of P blocks of different sizes (bytes). Ring: P-1 steps, each as long as the
    largest block forwarded: (P-1) (alpha + max b beta). Bruck (any P): ceil(log2 P) rounds,
    every rank receives the blocks it lacks once: ceil(log2 P) alpha + (sum b - min b) beta
    (the rank with the smallest own block receives the most). The tuned time is the smaller."""
    P = len(blocks)
    if P <= 1:
        return 0.0
    ring = (P - 1) * (l.alpha + max(blocks) * l.beta)
    bruck = math.ceil(math.log2(P)) * l.alpha + (sum(blocks) - min(blocks)) * l.beta
    return min(ring, bruck)


def alltoallv_pairwise(P: int, sent: float, received: float, l: Link) -> float:
    """Pairwise exchange, P-1 rounds: (P-1) alpha + max(bytes sent, bytes received) beta."""
    return 0.0 if P == 1 else (P - 1) * l.alpha + max(sent, received) * l.beta


# ---- topology ------------------------------------------------------------------------------
#
# Defaults (every one a command-line option):
#   network: InfiniBand NDR, 400 Gb/s = 50 GB/s per GPU (one ConnectX-7 NIC per GPU, as in a
#            DGX H100), alpha = 5 us (the upper end of the 2-5 us a small MPI/NCCL message
#            takes across a switch, software included);
#   in a node: NVLink 4 (H100 SXM5): 900 GB/s per GPU in both directions together, 450 GB/s
#            per direction; alpha = 1 us.
# These are link rates; NCCL's measured bus bandwidth is lower.


@dataclass(frozen=True)
class Topology:
    name: str
    gpus_per_node: int   # G; 1 = a flat network, every rank on its own NIC
    intra: Link
    inter: Link

    def nodes(self, P: int) -> int:
        return max(1, P // self.gpus_per_node)

    def levels(self, P: int):
        """(G, N, link): one level when all ranks share a node (P <= G) or the network is flat."""
        G = min(self.gpus_per_node, P)
        if G <= 1:
            return 1, P, self.inter
        if P % G:
            raise ValueError(f"P = {P} is not a multiple of {G} GPUs per node")
        return G, P // G, self.intra


def make_topologies(args) -> dict:
    intra = Link(args.alpha_intra_us * 1e-6, 1.0 / (args.beta_intra_gbs * 1e9))
    inter = Link(args.alpha_inter_us * 1e-6, 1.0 / (args.beta_inter_gbs * 1e9))
    return {
        "flat": Topology("flat", 1, intra, inter),
        "two_level": Topology("two_level", args.gpus_per_node, intra, inter),
    }


def dense_allreduce_time(P: int, n: float, topo: Topology) -> float:
    """Flat: tuned all-reduce on the network. Two-level (G GPUs per node, N nodes), the
    hierarchical all-reduce: intra-node reduce-scatter of n, inter-node tuned all-reduce of n/G
    between the GPUs with the same local index (all G NICs busy at once), intra-node allgather.
    All ranks in one node: tuned all-reduce on NVLink."""
    G, N, _ = topo.levels(P)
    if G == 1:
        return tuned_allreduce(P, n, topo.inter)
    if N == 1:
        return tuned_allreduce(P, n, topo.intra)
    return (ring_reduce_scatter(G, n, topo.intra) + tuned_allreduce(N, n / G, topo.inter)
            + ring_allgather(G, n, topo.intra))


def dense_allgather_time(P: int, n_total: float, topo: Topology) -> float:
    """Allgather of a vector of n_total bytes split evenly over the ranks (LIEC-SGD's e_s):
    flat, Bruck/ring; two-level: inter-node allgather of n_total / G per local index, then
    intra-node allgather."""
    G, N, link = topo.levels(P)
    if G == 1 or N == 1:
        return allgatherv([n_total / P] * P, link)
    return allgatherv([n_total / P] * N, topo.inter) + ring_allgather(G, n_total, topo.intra)


# ============================================================================================
# 3. How much the ranks' Top-k sets overlap
# ============================================================================================
#
# After merging the Top-k sets of m ranks (k entries each, dimension d) the union holds between
# k entries (all sets identical) and min(d, m k) (all disjoint). The model has one parameter,
# the overlap rho in [0, 1]: when two partial unions of equal size meet, a fraction rho of one
# is already in the other, so each doubling of m multiplies the union by (2 - rho):
#     U(m) = min(d, k m^g),  g = log2(2 - rho)
# rho = 1: identical sets (U = k); rho = 0: disjoint (U = min(d, m k)). The plots show both
# extremes; the tables use rho = 0.5 (g = 0.585) for ResNet-50 and BERT-large (an assumption:
# nothing was measured) and rho = 0.1 for the MLP (simulated, below), unless --overlap says
# otherwise; estimate-overlap fits rho to recursive-doubling traces (docs/scaling.md).

DEFAULT_OVERLAP = 0.5
# The MLP's: `simulate-overlap` (EF-SGD Top-k 1%, numpy, the example's batches and lr) measured
# rho = 0.098 on 8 ranks (300 steps) and 0.114 on 16 (200 steps): the ranks' Top-k sets are
# nearly disjoint (8 sets cover 6.8 k entries). `estimate-overlap` on traces of the C++
# recursive doubling (in progress when this was written) gave 0.053 on 8 ranks, 0.094 on 16.
MLP_OVERLAP = 0.1


def union_size(m: int, k: int, d: int, overlap: float) -> int:
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap {overlap} must be in [0, 1]")
    if m <= 1:
        return min(k, d)
    g = math.log2(2.0 - overlap)
    return int(min(d, round(k * m**g)))


def overlap_from_union(m: int, k: int, u: float) -> float:
    """The rho for which U(m) = u (no cap): the inverse of union_size."""
    if m <= 1 or k <= 0:
        raise ValueError("need m > 1 and k > 0")
    g = math.log(max(u, k) / k) / math.log(m)
    return min(1.0, max(0.0, 2.0 - 2.0**g))


# ============================================================================================
# 4. The schemes
# ============================================================================================
#
# Each scheme gives, for P ranks and a vector of d floats with Top-k's k (or a tensor list for
# PowerSGD):
#   bytes(...) -> [(up_i, down_i) for each rank i], flat, exactly as traffic_log counts them;
#   time(...)  -> an Exchange (seconds of communication; compute before and after it).


@dataclass(frozen=True)
class Params:
    """The knobs of the schemes (command-line options)."""
    density: float = 0.01
    overlap: float = DEFAULT_OVERLAP
    histogram_rounds: int = 4     # R when the selection needs rounds (R <= 4 for float)
    tie_round: bool = False       # whether the reduce-scatter selection needs its tie round
    sync_every: int = 32          # LIEC-SGD's H
    rank: int = 4                 # PowerSGD's r


@dataclass
class Exchange:
    comm: float = 0.0      # seconds on the network / NVLink
    before: float = 0.0    # compute before the exchange (compression), on the compute stream
    after: float = 0.0     # compute after (decode, sums, selection), before the update

    def __add__(self, o):
        return Exchange(self.comm + o.comm, self.before + o.before, self.after + o.after)

    def scaled(self, f):
        return Exchange(self.comm * f, self.before * f, self.after * f)


# ---- dense all-reduce (SGD) ----------------------------------------------------------------


def dense_bytes(P: int, d: int):
    """identity / allreduce class: d floats each way (as traffic_log counts it; a ring moves
    2 (P-1)/P of that over each link, see docs/scaling.md)."""
    return [(VALUE_BYTES * d, VALUE_BYTES * d)] * P


# ---- EF-SGD, Top-k, all-gather exchange ----------------------------------------------------


def allgather_topk_bytes(P: int, k: int):
    """up = wire(m_i) = 24 + 8k; down = the other P-1 messages."""
    w = sparse_wire_bytes(k)
    return [(w, (P - 1) * w)] * P


# ---- the sparse reduce-scatter (Ok-Topk style) ---------------------------------------------
#
# [0, d) is split into P regions; worker i sends the entries of its Top-k message in region r
# to rank r (one block each, alltoallv); rank r sums what it gets; R rounds of an allreduce_sum
# of 256 counts (H = 1024 bytes each way as floats up to d = 2^24, 2048 as doubles above) find
# the global threshold (R = 1 when the sums have at most k nonzero entries: the first round's
# total says so; R <= 4 for float; R = 0 on one rank), then, only if ties at the threshold need
# breaking, one allgatherv of 8 bytes per rank; every owner's s_r selected sums are
# allgathered, one block each. For rank i:
#   up   = sum_{r != i} block(n_{i,r}, len_r) + H R + block(s_i, len_i) [+ 8]
#   down = sum_{j != i} block(n_{j,i}, len_i) + H R + sum_{r != i} block(s_r, len_r) [+ 8 (P-1)]
# Modelled (nothing here is measured): regions of equal length (the balancing by the previous
# step's selection is taken to give equal entry counts), each rank's k entries spread evenly,
# n_{i,r} = shard(k, P, r); the P sets overlap as in section 3, so U(P) sums are nonzero; the
# selection keeps s = min(k, U(P)) of them, s_r = shard(s, P, r).

TIE_BYTES = 8
HISTOGRAM_OVERRIDE = None  # validate --histogram-bytes: another figure, to compare


def histogram_bytes(d: int) -> int:
    """One selection round each way: 256 counts, as float (exact) up to d = 2^24, else double."""
    if HISTOGRAM_OVERRIDE is not None:
        return HISTOGRAM_OVERRIDE
    return 256 * (4 if d <= 2 ** 24 else 8)


def reduce_scatter_plan(P: int, d: int, k: int, prm: Params):
    lens = [shard(d, P, r) for r in range(P)]
    n = [min(shard(k, P, r), lens[r]) for r in range(P)]  # n_{i,r}, the same for every i
    U = union_size(P, k, d, prm.overlap)
    # The first round's histogram tells every rank the total; at most k nonzero sums end it.
    R = 0 if P == 1 else (1 if U <= k else prm.histogram_rounds)
    s_total = min(k, U)
    s = [min(shard(s_total, P, r), lens[r]) for r in range(P)]
    tie = prm.tie_round and R > 0
    return lens, n, R, s, tie


def reduce_scatter_bytes(P: int, d: int, k: int, prm: Params):
    if P == 1:
        return [(0, 0)]  # nothing leaves the rank
    lens, n, R, s, tie = reduce_scatter_plan(P, d, k, prm)
    reduce_blk = [block_bytes(n[r], lens[r]) for r in range(P)]   # what any rank sends to owner r
    gather_blk = [block_bytes(s[r], lens[r]) for r in range(P)]   # owner r's selected sums
    all_reduce, all_gather = sum(reduce_blk), sum(gather_blk)
    out = []
    for i in range(P):
        up = (all_reduce - reduce_blk[i]) + histogram_bytes(d) * R + gather_blk[i]
        down = (P - 1) * reduce_blk[i] + histogram_bytes(d) * R + (all_gather - gather_blk[i])
        if tie:
            up += TIE_BYTES
            down += TIE_BYTES * (P - 1)
        out.append((up, down))
    return out


# ---- recursive doubling (SparCML) ----------------------------------------------------------
#
# P' = the largest power of two <= P, rem = P - P'. Fold: for i < 2 rem, even i sends its
# whole message (one block over [0, d), k entries) to i + 1. The P' remaining ranks (odd
# i < 2 rem, and i >= 2 rem) take virtual ranks v = i // 2 and v = i - rem; in round j
# (j = 0 .. log2 P' - 1) v exchanges its partial sum (one block over [0, d)) with v XOR 2^j.
# Before round j, v's partial sum covers the original ranks of the 2^j virtual ranks of its
# aligned group (2 for a virtual rank < rem, 1 otherwise): c ranks, U(c) entries. Then every
# remaining rank selects the k largest nonzero sums (|S| = min(k, U(P)), no communication),
# and odd i < 2 rem send that block to i - 1 (unfold).


def rd_layout(P: int):
    q = log2_floor(P)
    Pp = 1 << q
    rem = P - Pp
    return q, Pp, rem


def rd_virtual(i: int, rem: int):
    """The virtual rank of real rank i, or None for the even ranks < 2 rem (folded away)."""
    if i < 2 * rem:
        return i // 2 if i % 2 == 1 else None
    return i - rem


def rd_real(v: int, rem: int) -> int:
    return 2 * v + 1 if v < rem else v + rem


def rd_covered(v: int, j: int, rem: int) -> int:
    """How many original ranks virtual rank v's partial sum covers before round j."""
    lo = (v >> j) << j
    return sum(2 if u < rem else 1 for u in range(lo, lo + (1 << j)))


def recursive_doubling_messages(P: int, d: int, k: int, prm: Params):
    """Every logical message of one step: (phase, src, dst, nnz, len), in order."""
    q, Pp, rem = rd_layout(P)
    msgs = []
    for i in range(0, 2 * rem, 2):
        msgs.append(("fold", i, i + 1, k, d))
    for j in range(q):
        for v in range(Pp):
            nnz = union_size(rd_covered(v, j, rem), k, d, prm.overlap)
            msgs.append(("round", rd_real(v, rem), rd_real(v ^ (1 << j), rem), nnz, d))
    S = min(k, union_size(P, k, d, prm.overlap))
    for i in range(1, 2 * rem, 2):
        msgs.append(("unfold", i, i - 1, S, d))
    return msgs


def recursive_doubling_bytes(P: int, d: int, k: int, prm: Params):
    up, down = [0] * P, [0] * P
    for _, src, dst, nnz, length in recursive_doubling_messages(P, d, k, prm):
        b = block_bytes(nnz, length)
        up[src] += b
        down[dst] += b
    return list(zip(up, down))


# ---- DoubleSqueeze, sharded server ---------------------------------------------------------
#
# Rank r serves shard r (comm::shard_of); every worker compresses each shard separately with
# top_k{k_s}, k_s kept *per shard* (server.hpp). As examples/mpi_training.cpp does, k_s =
# max(1, floor(density floor(d / P))), so the density is the same as the unsharded scheme's.
# The server compresses the mean of its shard with the same top_k{k_s} (double_squeeze's
# default server compressor is a copy of the worker's).
#   up   = sum_{s != i} wire(m_{i,s}),  down = sum_{s != i} wire(M_s),
#   wire = 24 + 8 min(k_s, len_s).


def ds_shard_k(P: int, d: int, density: float) -> int:
    return k_of(density, d // P)


def double_squeeze_bytes(P: int, d: int, density: float, server: str = "sharded", root: int = 0):
    """Per rank (up, down). server = "single": rank `root` serves the whole vector with
    top_k{k}, k = max(1, floor(density d)); a worker i != root sends wire(m_i) up and receives
    wire(M); the root counts nothing (its message stays on the rank)."""
    if server == "single":
        w = sparse_wire_bytes(min(k_of(density, d), d))
        return [(0, 0) if i == root else (w, w) for i in range(P)]
    ks = ds_shard_k(P, d, density)
    w = [sparse_wire_bytes(min(ks, shard(d, P, s))) for s in range(P)]
    tot = sum(w)
    return [(tot - w[i], tot - w[i]) for i in range(P)]


# ---- LIEC-SGD, sharded server, synchronising every H steps ---------------------------------
#
# H - 1 compressed steps move what DoubleSqueeze's round trip moves; the H-th averages [x, g]
# with one allreduce_sum (2d floats each way) and sends every shard of e_s to every rank:
#   sync: up = 8d, down = 8d + 4 (d - len_i)        (liec_sgd.hpp, sharded)
#   sync, single server: up = 8d, down = 8d + 4d on every rank but the root
# Bytes and time are averaged over the H steps.


def liec_sync_bytes(P: int, d: int, server: str = "sharded", root: int = 0):
    out = []
    for i in range(P):
        extra = (0 if i == root else d) if server == "single" else d - shard(d, P, i)
        out.append((2 * VALUE_BYTES * d, 2 * VALUE_BYTES * d + VALUE_BYTES * extra))
    return out


def liec_bytes(P: int, d: int, density: float, H: int, server: str = "sharded"):
    comp = double_squeeze_bytes(P, d, density, server)
    sync = liec_sync_bytes(P, d, server)
    return [(((H - 1) * c[0] + y[0]) / H, ((H - 1) * c[1] + y[1]) / H) for c, y in zip(comp, sync)]


# ---- PowerSGD, rank r ----------------------------------------------------------------------
#
# Each tensor as a (rows, cols) matrix (a convolution (out, in kh kw)); it is compressed only
# if r (rows + cols) < rows cols, otherwise (every 1-D tensor) all-reduced as it is. Two
# all-reduces: the uncompressed values and every P factor (r rows each), then every Q factor
# (r cols each). up = down = 4 (uncompressed + sum r (rows + cols)) (docs/powersgd.md).


def powersgd_split(tensors, r: int):
    """(first all-reduce's floats, second all-reduce's floats)."""
    first = second = 0
    for t in tensors:
        rows, cols = t.matrix()
        if r * (rows + cols) < rows * cols:
            first += r * rows
            second += r * cols
        else:
            first += t.size
    return first, second


def powersgd_bytes(P: int, tensors, r: int):
    a, b = powersgd_split(tensors, r)
    return [(VALUE_BYTES * (a + b), VALUE_BYTES * (a + b))] * P


# ============================================================================================
# 5. Compression compute
# ============================================================================================
#
# Per-element costs measured on the CPU (docs/performance.md, 2 threads, exec::par):
#   compress_ns  0.869 ns per gradient element: the EF Top-k step (ef_top_k, par:2) on case c2
#                (ResNet-50 size, Student-t, k = 1%): 22.2 ms / 25,557,032
#   select_ns    0.227 ns per element: plain Top-k (top_k, par:2, c2): 5.79 ms / 25,557,032
#   decode_ns    9.49 ns per sparse entry added into a dense vector (decompress_add, par:2,
#                c3, k = 1e6 entries into d = 1e8): 9.49 ms / 1e6
#   powersgd_ns  PowerSGD step per element (exec::par, OpenBLAS; three layers, 4,997,120
#                elements): r = 1, 2, 4: 23.5, 24.4, 26.8 ms (docs/powersgd.md), linear in r
# These are CPU figures; gradcomp's CUDA kernels have not been measured yet. On a GPU the model
# assumes each kernel stays as many times slower than one read of its input as it is on the
# CPU, so every cost is scaled by (CPU read bandwidth) / (GPU memory bandwidth): the read
# baseline of case c3 on 2 threads, 4e8 bytes in 16.2 ms = 24.7 GB/s, against H100 SXM5's
# 3.35 TB/s of HBM3: a factor of 1/136. --device cpu uses the CPU figures as they are;
# --gpu-speedup F sets the factor by hand.


@dataclass(frozen=True)
class ComputeCosts:
    compress_ns: float = 22.2e6 / 25_557_032
    select_ns: float = 5.79e6 / 25_557_032
    decode_ns: float = 9.49
    powersgd_ms_r1: float = 23.5
    powersgd_ms_r4: float = 26.8
    powersgd_elems: int = 4_997_120
    cpu_read_gbs: float = 4e8 / 16.2e-3 / 1e9
    gpu_mem_gbs: float = 3350.0
    device: str = "gpu"
    gpu_speedup: float = 0.0  # 0: derived from the two bandwidths

    def factor(self) -> float:
        if self.device == "cpu":
            return 1.0
        if self.gpu_speedup > 0:
            return 1.0 / self.gpu_speedup
        return self.cpu_read_gbs / self.gpu_mem_gbs

    def compress(self, elements: float) -> float:
        return elements * self.compress_ns * 1e-9 * self.factor()

    def select(self, elements: float) -> float:
        return elements * self.select_ns * 1e-9 * self.factor()

    def decode(self, entries: float) -> float:
        return entries * self.decode_ns * 1e-9 * self.factor()

    def powersgd(self, elements: float, r: int) -> float:
        per_ms = self.powersgd_ms_r1 + (self.powersgd_ms_r4 - self.powersgd_ms_r1) * (r - 1) / 3.0
        return elements * per_ms * 1e-3 / self.powersgd_elems * self.factor()


# ---- time of one exchange, flat (one level) ------------------------------------------------
#
# P ranks on one link type; d floats; the Top-k schemes' k. `after` also counts the sums and
# decodes a rank does with what it received.


def t_allgather(P, d, k, link, cc: ComputeCosts):
    w = sparse_wire_bytes(k)
    return Exchange(comm=allgatherv([w] * P, link), before=cc.compress(d), after=cc.decode(P * k))


def t_reduce_scatter(P, d, k, link, cc: ComputeCosts, prm: Params):
    lens, n, R, s, tie = reduce_scatter_plan(P, d, k, prm)
    reduce_blk = [block_bytes(n[r], lens[r]) for r in range(P)]
    total = sum(reduce_blk)
    comm = max(alltoallv_pairwise(P, total - b, (P - 1) * b, link) for b in set(reduce_blk))
    comm += R * tuned_allreduce(P, histogram_bytes(d), link)
    if tie:
        comm += allgatherv([TIE_BYTES] * P, link)
    comm += allgatherv([block_bytes(s[r], lens[r]) for r in range(P)], link)
    received = (P - 1) * max(n) + sum(s)
    return Exchange(comm=comm, before=cc.compress(d), after=cc.decode(received) + cc.select(max(lens)))


def t_recursive_doubling(P, d, k, link, cc: ComputeCosts, prm: Params):
    """Fold, log2 P' rounds, unfold; a round lasts as long as its largest exchange, which is
    the first group's (it holds the most folded pairs): it covers 2^j + min(2^j, rem) ranks."""
    q, Pp, rem = rd_layout(P)
    comm = 0.0
    merged = 0
    if rem:
        S = min(k, union_size(P, k, d, prm.overlap))
        comm += 2 * link.alpha + (block_bytes(k, d) + block_bytes(S, d)) * link.beta
        merged += k
    for j in range(q):
        nnz = union_size((1 << j) + min(1 << j, rem), k, d, prm.overlap)
        comm += link.alpha + block_bytes(nnz, d) * link.beta
        merged += nnz
    return Exchange(comm=comm, before=cc.compress(d), after=cc.decode(merged) + cc.select(d))


def t_double_squeeze(P, d, density, link, cc: ComputeCosts):
    ks = ds_shard_k(P, d, density)
    w = [sparse_wire_bytes(min(ks, shard(d, P, s))) for s in range(P)]
    tot = sum(w)
    comm = max(alltoallv_pairwise(P, tot - w[i], (P - 1) * w[i], link) for i in range(P))
    comm += allgatherv(w, link)
    lmax = shard(d, P, 0)
    after = cc.decode((P - 1) * ks) + cc.compress(lmax) + cc.decode(P * ks)  # server mean, server EF, the update
    return Exchange(comm=comm, before=cc.compress(d), after=after)


def t_powersgd(P, tensors, r, link_allreduce, cc: ComputeCosts):
    a, b = powersgd_split(tensors, r)
    d = sum(t.size for t in tensors)
    comm = link_allreduce(VALUE_BYTES * a) + link_allreduce(VALUE_BYTES * b)
    c = cc.powersgd(d, r)
    return Exchange(comm=comm, before=c * 2 / 3, after=c / 3)  # M Q before, P Q^T and e after


# ---- time of one exchange, any topology ----------------------------------------------------
#
# Two-level (G GPUs per node, N = P / G nodes), the sparse schemes: an intra-node dense
# reduce-scatter of the d floats leaves each GPU the node's sum of one shard of d / G; the
# GPUs with the same local index (one per node) run the compressed exchange among themselves
# on that shard, with k_s = density * d / G, all G NICs of a node at once; an intra-node
# allgather of the result (one block per GPU: the union of the N messages for the all-gather
# exchange, the k_s selected sums for reduce-scatter and recursive doubling, the N server
# messages for DoubleSqueeze) rebuilds the update. So the node's sum is compressed, not each
# GPU's gradient, and compression works on d / G per GPU. The dense all-reduce, PowerSGD's
# factors and LIEC-SGD's synchronisation use the hierarchical all-reduce of section 2.

SCHEMES = ["dense", "allgather", "reduce_scatter", "recursive_doubling", "double_squeeze", "liec", "powersgd"]
LABELS = {
    "dense": "dense all-reduce (tuned)",
    "allgather": "EF-SGD Top-k, all-gather",
    "reduce_scatter": "sparse reduce-scatter",
    "recursive_doubling": "recursive doubling",
    "double_squeeze": "DoubleSqueeze sharded",
    "liec": "LIEC-SGD (H=32), sharded",
    "powersgd": "PowerSGD (r=4)",
}


@functools.lru_cache(maxsize=None)
def _exchange_time_cached(scheme, P, tensors, topo, cc, prm):
    return _exchange_time(scheme, P, list(tensors), topo, cc, prm)


def exchange_time(scheme: str, P: int, tensors, topo: Topology, cc: ComputeCosts, prm: Params) -> Exchange:
    return _exchange_time_cached(scheme, P, tuple(tensors), topo, cc, prm)


def _exchange_time(scheme: str, P: int, tensors, topo: Topology, cc: ComputeCosts, prm: Params) -> Exchange:
    d = sum(t.size for t in tensors)
    if P == 1:
        return Exchange()
    if scheme == "dense":
        return Exchange(comm=dense_allreduce_time(P, VALUE_BYTES * d, topo))
    if scheme == "powersgd":
        return t_powersgd(P, tensors, prm.rank, lambda n: dense_allreduce_time(P, n, topo), cc)
    if scheme == "liec":
        H = prm.sync_every
        comp = exchange_time("double_squeeze", P, tensors, topo, cc, prm)
        sync = Exchange(comm=dense_allreduce_time(P, 2 * VALUE_BYTES * d, topo)
                        + dense_allgather_time(P, VALUE_BYTES * d, topo))
        return comp.scaled((H - 1) / H) + sync.scaled(1 / H)

    G, N, link = topo.levels(P)
    if G == 1 or N == 1:
        return _sparse_flat(scheme, P, d, link, cc, prm)
    # two levels: reduce-scatter in the node, the scheme across nodes on d / G, allgather in the node
    ds = shard(d, G, 0)
    inner = _sparse_flat(scheme, N, ds, topo.inter, cc, prm)
    ks = k_of(prm.density, ds)
    if scheme == "allgather":
        result = union_size(N, ks, ds, prm.overlap)
    elif scheme == "double_squeeze":
        result = min(ds, N * ds_shard_k(N, ds, prm.density))
    else:
        result = min(ks, union_size(N, ks, ds, prm.overlap))
    comm = (ring_reduce_scatter(G, VALUE_BYTES * d, topo.intra) + inner.comm
            + (G - 1) * topo.intra.alpha + (G - 1) * block_bytes(result, ds) * topo.intra.beta)
    return Exchange(comm=comm, before=inner.before, after=inner.after + cc.decode((G - 1) * result))


def _sparse_flat(scheme, P, d, link, cc, prm):
    k = k_of(prm.density, d)
    if scheme == "allgather":
        return t_allgather(P, d, k, link, cc)
    if scheme == "reduce_scatter":
        return t_reduce_scatter(P, d, k, link, cc, prm)
    if scheme == "recursive_doubling":
        return t_recursive_doubling(P, d, k, link, cc, prm)
    if scheme == "double_squeeze":
        return t_double_squeeze(P, d, prm.density, link, cc)
    raise ValueError(f"unknown scheme {scheme}")


def scheme_bytes(scheme: str, P: int, tensors, prm: Params):
    """Bytes per rank of one step over the whole model (flat, as traffic_log counts them)."""
    d = sum(t.size for t in tensors)
    k = k_of(prm.density, d)
    if scheme == "dense":
        return dense_bytes(P, d)
    if scheme == "allgather":
        return allgather_topk_bytes(P, k)
    if scheme == "reduce_scatter":
        return reduce_scatter_bytes(P, d, k, prm)
    if scheme == "recursive_doubling":
        return recursive_doubling_bytes(P, d, k, prm)
    if scheme == "double_squeeze":
        return double_squeeze_bytes(P, d, prm.density)
    if scheme == "liec":
        return liec_bytes(P, d, prm.density, prm.sync_every)
    if scheme == "powersgd":
        return powersgd_bytes(P, tensors, prm.rank)
    raise ValueError(f"unknown scheme {scheme}")


def mean_bytes(per_rank):
    P = len(per_rank)
    return sum(u for u, _ in per_rank) / P, sum(v for _, v in per_rank) / P


# ============================================================================================
# 6. Overlap with backward (DDP)
# ============================================================================================
#
# Gradients become ready during backward in the reverse of the parameters' definition order;
# each tensor's backward takes a share of the backward time proportional to its `work`
# (scale_model_layers.py). As PyTorch DDP does, consecutive tensors in that order fill buckets
# of 25 MiB (the first bucket 1 MiB), a bucket closing once it holds at least the cap. A
# bucket is ready when its last tensor is; its compression runs on the compute stream right
# then (delaying the rest of backward); its exchange starts when it is compressed and the
# previous bucket's exchange (and decode) has finished (one communication stream). The step:
#     T = forward + end of the last exchange (or of backward, if later)
#     exposed communication = T - forward - backward - compression
# Without overlap (gradcomp's step() today: one exchange of the whole vector after backward):
#     T = forward + backward + before + comm + after
# Each scheme is charged the better of the two (many small exchanges can cost more in latency
# than they hide).


@dataclass
class ModelSpec:
    name: str
    title: str
    build: object
    forward_ms: float
    backward_ms: float
    note: str
    overlap: float = DEFAULT_OVERLAP

    def tensors(self):
        return _built(self.build)


# Compute per step and GPU (forward, backward = 2 x forward):
#  MLP: 32 images per rank (examples/mpi_training.cpp): a few kernel launches on a GPU; 0.15 ms
#       in all is an assumption (launch-bound), not a measurement.
#  ResNet-50: MLPerf Training v3.0, closed division, 8x H100-SXM5-80GB (MLPerf-ID 3.0-2053,
#       MXNet): 13.466 minutes to 75.9% top-1. Taking about 35 epochs of 1,281,167 images (an
#       assumption: the epoch count is not from the source), 44.8M images in 808 s: 6,900 images/s per
#       GPU, so 37 ms for a batch of 256 per GPU (12.3 ms forward, 24.6 ms backward). An
#       ordinary PyTorch DDP job is 2-3x slower per image, which makes communication matter less.
#  BERT-large: pre-training phase 2 shape, 32 sequences of 512 tokens per GPU: 6 N + 12 L s h
#       FLOPs per token (N = 335,141,888, L = 24, s = 512, h = 1024) = 3.54e13 FLOPs per step,
#       at 45% of H100 SXM5's 989 TFLOP/s dense BF16 peak: 79.6 ms (26.5 forward, 53.1
#       backward). For comparison, MLPerf Training v3.0's 8x H100 BERT ran in 5.349 minutes
#       (MLPerf-ID 3.0-2055); its sample count is not used here.

def _bert_ms(mfu=0.45, seqs=32, s=512, L=24, h=1024, peak=989e12):
    N = layers.BERT_LARGE_MODEL_TOTAL
    return (6 * N + 12 * L * s * h) * seqs * s / (mfu * peak) * 1e3


MODEL_SPECS = {
    "mlp": ModelSpec("mlp", "Fashion-MNIST MLP 784-128-10 (d = 101,770)", layers.mlp, 0.05, 0.10,
                     "32 images per rank; launch-bound, assumed", overlap=MLP_OVERLAP),
    "resnet50": ModelSpec("resnet50", "ResNet-50 (d = 25,557,032)", layers.resnet50, 37.0 / 3, 37.0 * 2 / 3,
                          "256 images per GPU; MLPerf Training v3.0, 8x H100 (3.0-2053)"),
    "bert_large": ModelSpec("bert_large", "BERT-large, BertModel (d = 335,141,888)", layers.bert_large,
                            _bert_ms() / 3, _bert_ms() * 2 / 3,
                            "32 x 512 tokens per GPU; 6N FLOPs/token at 45% of 989 TFLOP/s"),
}


@functools.lru_cache(maxsize=None)
def _built(build):
    return tuple(build())


def ddp_buckets(tensors, cap_bytes=25 * MIB, first_cap_bytes=1 * MIB):
    """Buckets in backward order: lists of indices into `tensors`."""
    buckets, cur, size = [], [], 0
    cap = first_cap_bytes
    for idx in reversed(range(len(tensors))):
        cur.append(idx)
        size += VALUE_BYTES * tensors[idx].size
        if size >= cap:
            buckets.append(cur)
            cur, size, cap = [], 0, cap_bytes
    if cur:
        buckets.append(cur)
    return buckets


@dataclass
class StepTime:
    forward: float
    backward: float
    compress: float
    exposed: float
    total: float
    mode: str       # "overlap" (per bucket, during backward) or "after" (one exchange after backward)
    comm: float     # total communication seconds (serial sum)
    after_total: float = float("nan")  # the step with one exchange after backward (gradcomp's step())


def step_time(scheme: str, P: int, spec: ModelSpec, topo: Topology, cc: ComputeCosts, prm: Params,
              cap_bytes=25 * MIB, first_cap_bytes=1 * MIB, modes=("overlap", "after")) -> StepTime:
    tensors = spec.tensors()
    F, B = spec.forward_ms * 1e-3, spec.backward_ms * 1e-3
    best = None
    if "after" in modes:
        x = exchange_time(scheme, P, tensors, topo, cc, prm)
        tot = F + B + x.before + x.comm + x.after
        best = StepTime(F, B, x.before, x.comm + x.after, tot, "after", x.comm, tot)
    if "overlap" in modes:
        work = [t.work for t in tensors]
        wsum = sum(work)
        compute = 0.0    # compute stream clock (backward + compression), from the start of backward
        comm_free = 0.0  # communication stream clock
        compress = comm_total = 0.0
        for bucket in ddp_buckets(tensors, cap_bytes, first_cap_bytes):
            compute += B * sum(work[i] for i in bucket) / wsum  # backward of the bucket's tensors
            x = exchange_time(scheme, P, [tensors[i] for i in bucket], topo, cc, prm)
            compute += x.before
            compress += x.before
            comm_total += x.comm
            comm_free = max(comm_free, compute) + x.comm + x.after
        tot = F + max(compute, comm_free)
        st = StepTime(F, B, compress, tot - F - B - compress, tot, "overlap", comm_total)
        if best is None or st.total < best.total:
            st.after_total = best.after_total if best is not None else float("nan")
            best = st
    return best


# ============================================================================================
# 7. Validating the bytes against traces
# ============================================================================================
#
# examples/mpi_training --trace PREFIX writes PREFIX.<r>.jsonl on every rank r, one JSON object
# per applied step:
#   {"step", "rank", "ranks", "scheme", "exchange", "d", "up", "down",
#    "messages": [{"phase", "peer", "dir": "send"|"recv", "nnz", "len", "bytes"}, ...]}
# The rule for each phase (what one message costs, from (nnz, len) alone):
#   allgather   the plain exchange's message: wire(sparse, nnz) = 24 + 8 nnz (len = d)
#   allreduce   a dense all-reduce contribution or result: 4 len
#   reduce, gather, fold, round, unfold   block(nnz, len)
#   histogram   one round of the selection's allreduce_sum of 256 counts: 1024 (float counts,
#               exact up to d = 2^24), 2048 above (doubles)
#   tie         the tie-break allgatherv: 8
# A rank's contribution to a collective (allgather, allreduce, gather, histogram, tie) is one
# "send" record, peer -1 (it is counted once, as traffic_log counts it; allgather, gather and
# tie may instead list one send per receiving peer, P - 1 records of the same size, which count
# once); what it receives is one "recv" record per contributing peer (allreduce and histogram:
# one record, peer -1, the reduced result). up = the sum of the sends, down = the sum of the
# receives.

COLLECTIVE_PHASES = {"allgather", "allreduce", "gather", "histogram", "tie"}
P2P_PHASES = {"reduce", "fold", "round", "unfold"}
REDUCED_PHASES = {"allreduce", "histogram"}  # received as one reduced result, peer -1


class TraceError(Exception):
    pass


def message_bytes(phase: str, nnz: int, length: int, d: int) -> int:
    if phase == "allgather":
        return sparse_wire_bytes(nnz)
    if phase == "allreduce":
        return VALUE_BYTES * length
    if phase in ("reduce", "gather", "fold", "round", "unfold"):
        return block_bytes(nnz, length)
    if phase == "histogram":
        return histogram_bytes(d)
    if phase == "tie":
        return TIE_BYTES
    raise TraceError(f"unknown phase {phase!r}")


def load_traces(prefixes):
    """{prefix: {rank: [record, ...]}} from PREFIX.<r>.jsonl files (or the files themselves)."""
    out = {}
    for prefix in prefixes:
        if prefix.endswith(".jsonl") and os.path.isfile(prefix):
            files = [prefix]
            prefix = prefix.rsplit(".", 2)[0]
        else:
            files = sorted(glob.glob(glob.escape(prefix) + ".*.jsonl"))
        if not files:
            raise TraceError(f"{prefix}: no files {prefix}.<rank>.jsonl")
        ranks = out.setdefault(prefix, {})
        for f in files:
            with open(f) as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise TraceError(f"{f}:{lineno}: not JSON: {e}") from None
                    rec["_where"] = f"{f}:{lineno}"
                    ranks.setdefault(rec["rank"], []).append(rec)
    return out


@dataclass
class ValidationReport:
    steps: int = 0
    records: int = 0
    messages: int = 0
    closed_form: int = 0
    exchanges: set = field(default_factory=set)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors


def _need(rec, key):
    if key not in rec:
        raise TraceError(f"{rec.get('_where', '?')}: missing field {key!r}")
    return rec[key]


def validate_prefix(ranks: dict, report: ValidationReport, label: str = ""):
    """Checks one run (every rank's records). Appends to report.errors; raises nothing."""
    err = report.errors.append
    P_set = {r["ranks"] for recs in ranks.values() for r in recs}
    if len(P_set) != 1:
        err(f"{label}: records disagree on 'ranks': {sorted(P_set)}")
        return
    P = P_set.pop()
    if sorted(ranks) != list(range(P)):
        err(f"{label}: expected files for ranks 0..{P - 1}, found ranks {sorted(ranks)}")
        return
    by_step = {}
    for r, recs in ranks.items():
        for rec in recs:
            if rec["rank"] != r:
                err(f"{rec['_where']}: rank {rec['rank']} in the file of rank {r}")
            key = rec["step"]
            if (key, r) in by_step:
                err(f"{rec['_where']}: step {key} appears twice for rank {r}")
            by_step[(key, r)] = rec
    steps = sorted({s for s, _ in by_step})
    for s in steps:
        missing = [r for r in range(P) if (s, r) not in by_step]
        if missing:
            err(f"{label}: step {s}: no record from ranks {missing}")
            continue
        recs = [by_step[(s, r)] for r in range(P)]
        report.steps += 1
        try:
            _validate_step(recs, P, report)
        except TraceError as e:
            err(str(e))


def _validate_step(recs, P, report: ValidationReport):
    err = report.errors.append
    step = recs[0]["step"]
    where = f"step {step}"
    for key in ("exchange", "d", "scheme"):
        vals = {str(_need(r, key)) for r in recs}
        if len(vals) != 1:
            raise TraceError(f"{where}: ranks disagree on {key!r}: {sorted(vals)}")
    exchange, d = recs[0]["exchange"], recs[0]["d"]
    report.exchanges.add(exchange)
    sends = {}   # (phase, src, dst) -> list of (nnz, len, bytes)
    recvs = {}
    coll_sends = {}  # (phase, src) -> list
    coll_recvs = {}  # (phase, dst, src) -> list
    for rec in recs:
        i = rec["rank"]
        up = down = 0
        for n, m in enumerate(_normalise_collective_sends(_need(rec, "messages"), i, P)):
            report.messages += 1
            ctx = f"{rec['_where']}: {where}, rank {i}, message {n} ({m.get('phase')}, {m.get('dir')}, peer {m.get('peer')})"
            phase, direction = m.get("phase"), m.get("dir")
            nnz, length = m.get("nnz"), m.get("len")
            if phase == "histogram" and length is None:
                length = 256
            if phase == "tie":
                nnz = nnz if nnz is not None else 1
                length = length if length is not None else 1
            if nnz is None or length is None:
                err(f"{ctx}: needs nnz and len")
                continue
            if phase in ("allgather", "reduce", "gather", "fold", "round", "unfold") and not 0 <= nnz <= length:
                err(f"{ctx}: nnz {nnz} not in [0, len {length}]")
                continue
            try:
                b = message_bytes(phase, nnz, length, rec["d"])
            except TraceError as e:
                err(f"{ctx}: {e}")
                continue
            if "bytes" in m and m["bytes"] != b:
                err(f"{ctx}: traced {m['bytes']} bytes, the rule for {phase}(nnz={nnz}, len={length}) gives {b}")
            if phase in ("allgather", "fold", "round", "unfold") and length != d:
                err(f"{ctx}: len {length} != d {d}")
            peer = m.get("peer")
            if direction == "send":
                up += b
                if phase in COLLECTIVE_PHASES:
                    if peer not in (-1, None):
                        err(f"{ctx}: a contribution to a collective is one send with peer -1")
                    coll_sends.setdefault((phase, i), []).append((nnz, length, b))
                else:
                    if peer is None or not 0 <= peer < P or peer == i:
                        err(f"{ctx}: bad peer {peer}")
                    sends.setdefault((phase, i, peer), []).append((nnz, length, b))
            elif direction == "recv":
                down += b
                if phase in REDUCED_PHASES:
                    coll_recvs.setdefault((phase, i, -1), []).append((nnz, length, b))
                elif phase in COLLECTIVE_PHASES:
                    coll_recvs.setdefault((phase, i, peer), []).append((nnz, length, b))
                else:
                    if peer is None or not 0 <= peer < P or peer == i:
                        err(f"{ctx}: bad peer {peer}")
                    recvs.setdefault((phase, peer, i), []).append((nnz, length, b))
            else:
                err(f"{ctx}: dir must be send or recv")
        report.records += 1
        if up != _need(rec, "up") or down != _need(rec, "down"):
            err(f"{rec['_where']}: {where}, rank {i}: the model gives up {up}, down {down}; "
                f"measured up {rec['up']}, down {rec['down']}")
    # Point-to-point: every send is received, with the same entries (empty blocks, 0 bytes,
    # may be listed on either side or not at all).
    for key in set(sends) | set(recvs):
        a = sorted(x for x in sends.get(key, []) if x[0])
        b = sorted(x for x in recvs.get(key, []) if x[0])
        if a != b:
            err(f"{where}: {key[0]} {key[1]} -> {key[2]}: sent {a}, received {b}")
    # Collectives: every contribution reaches every other rank.
    for (phase, src), items in coll_sends.items():
        if phase in REDUCED_PHASES:
            continue
        for dst in range(P):
            if dst != src and sorted(coll_recvs.get((phase, dst, src), [])) != sorted(items):
                err(f"{where}: {phase} from rank {src}: sent {items}, rank {dst} received "
                    f"{coll_recvs.get((phase, dst, src), [])}")
    for (phase, dst, src), items in coll_recvs.items():
        if phase not in REDUCED_PHASES and (phase, src) not in coll_sends:
            err(f"{where}: rank {dst} received {phase} from rank {src}, which sent none")
    for phase in REDUCED_PHASES:
        counts = {(len(coll_sends.get((phase, r), [])), len(coll_recvs.get((phase, r, -1), []))) for r in range(P)}
        if len(counts) > 1 or any(s != q for s, q in counts):
            err(f"{where}: {phase}: every rank must send and receive the same number of times, got {sorted(counts)}")
        elif phase == "histogram" and counts and max(counts)[0] > 4:
            err(f"{where}: {max(counts)[0]} histogram rounds (at most 4 for float)")
    # The structure of each exchange.
    if exchange == "recursive_doubling":
        _check_rd_structure(recs, sends, P, d, where, err)
    elif exchange == "reduce_scatter":
        _check_rs_structure(sends, recvs, coll_sends, P, d, where, err)
    # Closed forms of the data-independent schemes, recognised by their phases.
    phases = {m.get("phase") for rec in recs for m in rec["messages"]}
    if phases == {"allreduce"}:
        _closed_form(recs, dense_bytes(P, d), f"{where}: dense all-reduce (4d each way)", report)
    elif phases == {"allgather"}:
        ks = {nnz for (ph, _), items in coll_sends.items() for nnz, _, _ in items}
        if len(ks) == 1 and all(len(coll_sends.get(("allgather", r), [])) == 1 for r in range(P)):
            k = ks.pop()
            declared = {rec["k"] for rec in recs if "k" in rec}
            if declared and declared != {k}:
                err(f"{where}: the records declare k = {sorted(declared)}, the messages hold {k} entries")
            _closed_form(recs, allgather_topk_bytes(P, k), f"{where}: all-gather Top-k with k = {k}", report)
        else:
            report.notes.append(f"{where}: all-gather messages of different sizes ({sorted(ks)}): "
                                "no closed form (not Top-k); per-message rules only")


def _normalise_collective_sends(messages, rank, P):
    """A contribution to an allgather-like collective may also be written as one send per
    receiving peer (P - 1 records of the same size, one to each other rank): it is one logical
    message, counted once, so such a group becomes one send with peer -1."""
    others = sorted(r for r in range(P) if r != rank)
    groups = {}
    for m in messages:
        if m.get("phase") in ("allgather", "gather", "tie") and m.get("dir") == "send" and m.get("peer") not in (-1, None):
            groups.setdefault((m["phase"], m.get("nnz"), m.get("len"), m.get("bytes")), []).append(m.get("peer"))
    if not groups:
        return messages
    out = [m for m in messages if not (m.get("phase") in ("allgather", "gather", "tie") and m.get("dir") == "send"
                                       and m.get("peer") not in (-1, None))]
    for (phase, nnz, length, b), peers in groups.items():
        times = len(peers) // max(1, len(others))
        if others and sorted(peers) == sorted(others * times):
            out += [{"phase": phase, "peer": -1, "dir": "send", "nnz": nnz, "len": length, **({"bytes": b} if b is not None else {})}] * times
        else:
            out += [{"phase": phase, "peer": p, "dir": "send", "nnz": nnz, "len": length, **({"bytes": b} if b is not None else {})} for p in peers]
    return out


def _closed_form(recs, model, what, report):
    for rec, (u, v) in zip(recs, model):
        if (rec["up"], rec["down"]) != (u, v):
            report.errors.append(f"{rec['_where']}: {what}: closed form gives up {u}, down {v}; "
                                 f"measured up {rec['up']}, down {rec['down']}")
    report.closed_form += 1


def _check_rd_structure(recs, sends, P, d, where, err):
    q, Pp, rem = rd_layout(P)
    for (phase, src, dst), items in sends.items():
        if phase == "fold" and not (src < 2 * rem and src % 2 == 0 and dst == src + 1 and len(items) == 1):
            err(f"{where}: fold {src} -> {dst}: only even i < 2 rem = {2 * rem} send one fold, to i + 1")
        if phase == "unfold" and not (src < 2 * rem and src % 2 == 1 and dst == src - 1 and len(items) == 1):
            err(f"{where}: unfold {src} -> {dst}: only odd i < 2 rem = {2 * rem} send one unfold, to i - 1")
    for rec in recs:
        i = rec["rank"]
        v = rd_virtual(i, rem)
        partners = [m.get("peer") for m in rec["messages"] if m.get("phase") == "round" and m.get("dir") == "send"]
        expected = [] if v is None else [rd_real(v ^ (1 << j), rem) for j in range(q)]
        if partners != expected:
            err(f"{where}: rank {i} sent its rounds to {partners}; recursive doubling on P = {P} "
                f"(P' = {Pp}, rem = {rem}) sends them to {expected}, in that order")


def _check_rs_structure(sends, recvs, coll_sends, P, d, where, err):
    # The region lengths each message names must be one partition of [0, d).
    lens = {}
    for (phase, src, dst), items in list(sends.items()) + list(recvs.items()):
        if phase == "reduce":
            for _, length, _ in items:
                if lens.setdefault(dst, length) != length:
                    err(f"{where}: region {dst} has lengths {lens[dst]} and {length}")
    for (phase, src), items in coll_sends.items():
        if phase == "gather":
            for _, length, _ in items:
                if lens.setdefault(src, length) != length:
                    err(f"{where}: region {src} has lengths {lens[src]} and {length} (gather)")
    if len(lens) == P and sum(lens.values()) != d:
        err(f"{where}: the regions' lengths add up to {sum(lens.values())}, not d = {d}")
    for (phase, src, dst), items in sends.items():
        if phase == "reduce" and len(items) != 1:
            err(f"{where}: rank {src} sent {len(items)} reduce blocks to rank {dst} (one at most)")


def validate(prefixes) -> ValidationReport:
    report = ValidationReport()
    try:
        runs = load_traces(prefixes)
    except TraceError as e:
        report.errors.append(str(e))
        return report
    for prefix, ranks in runs.items():
        validate_prefix(ranks, report, prefix)
    return report


def simulate_mlp_overlap(ranks=8, steps=300, density=0.01, batch=32, lr=0.1, seed=1,
                         data_dir="/usr/share/datasets/fashion-mnist"):
    """Until traces of recursive doubling exist: EF-SGD with Top-k on the Fashion-MNIST MLP, as
    examples/mpi_training.cpp runs it (each rank samples batches of `batch` images from its own
    slice of the training set, whole-model Top-k of p = e + lr g, x -= the mean of the
    messages), in numpy, measuring the union of the ranks' Top-k index sets over the aligned
    groups of 2, 4, ... ranks that recursive doubling merges. Returns (rho, g, per-m mean
    union / k). Needs numpy and the dataset (Debian: dataset-fashion-mnist)."""
    import gzip

    import numpy as np

    def idx(name):
        with gzip.open(os.path.join(data_dir, name)) as fh:
            raw = fh.read()
        dims = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

    images = idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    labels = idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(seed)
    n_in, n_h, n_out = 784, 128, 10
    d = n_in * n_h + n_h + n_h * n_out + n_out
    k = k_of(density, d)
    x = np.zeros(d, dtype=np.float32)
    x[:n_in * n_h] = rng.normal(0, math.sqrt(2 / n_in), n_in * n_h)
    x[n_in * n_h + n_h:n_in * n_h + n_h + n_h * n_out] = rng.normal(0, math.sqrt(2 / n_h), n_h * n_out)

    def grad(x, xb, yb):
        W1 = x[:n_in * n_h].reshape(n_in, n_h)
        b1 = x[n_in * n_h:n_in * n_h + n_h]
        W2 = x[n_in * n_h + n_h:n_in * n_h + n_h + n_h * n_out].reshape(n_h, n_out)
        b2 = x[-n_out:]
        z = xb @ W1 + b1
        h = np.maximum(z, 0)
        lo = h @ W2 + b2
        pr = np.exp(lo - lo.max(axis=1, keepdims=True))
        pr /= pr.sum(axis=1, keepdims=True)
        pr[np.arange(len(yb)), yb] -= 1
        pr /= len(yb)
        dh = (pr @ W2.T) * (z > 0)
        return np.concatenate([(xb.T @ dh).ravel(), dh.sum(0), (h.T @ pr).ravel(), pr.sum(0)]).astype(np.float32)

    n = len(labels)
    slices = [(r * n // ranks, (r + 1) * n // ranks) for r in range(ranks)]
    rngs = [np.random.default_rng(1000 + r) for r in range(ranks)]
    e = [np.zeros(d, dtype=np.float32) for _ in range(ranks)]
    q = log2_floor(ranks)
    unions = {1 << j: [] for j in range(1, q + 1)}
    for _ in range(steps):
        total = np.zeros(d, dtype=np.float32)
        sets = []
        for r in range(ranks):
            ids = rngs[r].integers(slices[r][0], slices[r][1], batch)
            p = e[r] + lr * grad(x, images[ids], labels[ids])
            top = np.argpartition(np.abs(p), d - k)[d - k:]
            total[top] += p[top]
            e[r] = p
            e[r][top] = 0
            sets.append(top)
        x -= total / ranks
        for m in unions:
            for g0 in range(0, 1 << q, m):
                unions[m].append(len(np.unique(np.concatenate(sets[g0:g0 + m]))))
    ratio = {m: float(np.mean(v)) / k for m, v in unions.items()}
    pts = [(math.log(m), math.log(r)) for m, r in ratio.items()]
    g = min(1.0, max(0.0, sum(a * b for a, b in pts) / sum(a * a for a, _ in pts)))
    return 2.0 - 2.0**g, g, ratio


def estimate_overlap(prefixes):
    """Fits rho to recursive-doubling traces: every round message covers c original ranks
    (known from the layout) and carries U(c) entries; k is the fold or first-round size."""
    runs = load_traces(prefixes)
    pts = []
    for ranks in runs.values():
        for recs in ranks.values():
            for rec in recs:
                if rec.get("exchange") != "recursive_doubling":
                    continue
                P, d, i = rec["ranks"], rec["d"], rec["rank"]
                q, Pp, rem = rd_layout(P)
                v = rd_virtual(i, rem)
                if v is None:
                    continue
                rounds = [m for m in rec["messages"] if m["phase"] == "round" and m["dir"] == "send"]
                if len(rounds) != q or rd_covered(v, 0, rem) != 1:
                    continue
                k = rounds[0]["nnz"]
                for j, m in enumerate(rounds[1:], start=1):
                    c = rd_covered(v, j, rem)
                    if m["nnz"] < d:  # not saturated
                        pts.append((math.log(c), math.log(max(m["nnz"], k) / k)))
    if not pts:
        raise TraceError("no usable recursive-doubling round messages (P >= 4 needed)")
    g = sum(x * y for x, y in pts) / sum(x * x for x, _ in pts)  # least squares through 0
    g = min(1.0, max(0.0, g))
    return 2.0 - 2.0**g, g, len(pts)


# ============================================================================================
# 8. Outputs and the command line
# ============================================================================================

P_VALUES = [2**i for i in range(1, 11)]
DENSITIES = [0.01, 0.001]


def scheme_label(s, prm):
    if s == "liec":
        return f"LIEC-SGD (H={prm.sync_every}), sharded"
    if s == "powersgd":
        return f"PowerSGD (r={prm.rank})"
    return LABELS[s]


def run_grid(args, models, densities, topos, p_values):
    """Rows of (model, density, topology, P, scheme, overlap, up, down, t_*)."""
    cc = costs_from(args)
    rows = []
    for mname in models:
        spec = spec_from(args, mname)
        tensors = spec.tensors()
        for dens in densities:
            for P in p_values:
                for scheme in SCHEMES:
                    variants = [spec.overlap]
                    if scheme in ("reduce_scatter", "recursive_doubling"):
                        variants = [spec.overlap, 0.0, 1.0]
                    for ov in variants:
                        prm = params_from(args, dens, ov)
                        up, down = mean_bytes(scheme_bytes(scheme, P, tensors, prm))
                        for tname in topos:
                            try:
                                st = step_time(scheme, P, spec, topos[tname], cc, prm)
                            except ValueError:  # P not a multiple of the GPUs per node
                                nan = float("nan")
                                st = StepTime(nan, nan, nan, nan, nan, "n/a", nan, nan)
                            rows.append(dict(model=mname, density=dens, topology=tname, P=P, scheme=scheme,
                                             overlap=ov, up=up, down=down, step_ms=st.total * 1e3,
                                             exposed_ms=st.exposed * 1e3, compress_ms=st.compress * 1e3,
                                             comm_ms=st.comm * 1e3, mode=st.mode,
                                             after_ms=st.after_total * 1e3,
                                             compute_ms=(st.forward + st.backward) * 1e3))
    return rows


def _pick(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def fmt_ms(x):
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown_table(rows, models, density, topo_names, p_values, prm_for_labels, specs, margin=0.02):
    out = io.StringIO()
    comp = [s for s in SCHEMES if s != "dense"]
    out.write(f"Density {density:g}. Milliseconds per step (the better of overlapping per 25 MiB bucket and one "
              f"exchange after backward); in brackets the speed-up over the tuned dense all-reduce with overlap; "
              f"**bold** where compression pays (speed-up >= {1 + margin:g}), *italic* where it loses "
              f"(<= {1 - margin:g}).\n")
    for m in models:
        spec = specs[m]
        for t in topo_names:
            out.write(f"\n**{spec.title}, {'flat network' if t == 'flat' else 'two-level, 8 GPUs per node'}**, "
                      f"compute {spec.forward_ms + spec.backward_ms:.3g} ms per step, overlap rho = {spec.overlap:g}\n\n")
            out.write("| P | dense | " + " | ".join(scheme_label(s, prm_for_labels) for s in comp) + " |\n")
            out.write("|---:|---:|" + "---:|" * len(comp) + "\n")
            for P in p_values:
                base = _pick(rows, model=m, density=density, topology=t, P=P, scheme="dense")[0]["step_ms"]
                cells = []
                for s in comp:
                    r = _pick(rows, model=m, density=density, topology=t, P=P, scheme=s, overlap=spec.overlap)[0]
                    sp = base / r["step_ms"]
                    cell = f"{fmt_ms(r['step_ms'])} ({sp:.2f}x)"
                    v = verdict(sp, margin)
                    cells.append(f"**{cell}**" if v == "pays" else f"*{cell}*" if v == "loses" else cell)
                out.write(f"| {P} | {fmt_ms(base)} | " + " | ".join(cells) + " |\n")
    return out.getvalue()


SHORT = {"allgather": "AG", "reduce_scatter": "RS", "recursive_doubling": "RD", "double_squeeze": "DS",
         "liec": "LIEC", "powersgd": "PSGD"}


def verdict(speedup: float, margin: float) -> str:
    """pays / even / loses, with a margin for what the model cannot resolve."""
    if speedup >= 1.0 + margin:
        return "pays"
    if speedup <= 1.0 - margin:
        return "loses"
    return "even"


def summary_table(rows, models, densities, topo_names, p_values, specs, margin=0.02, key="step_ms"):
    """One row per model, density and topology; one column per P: the best compressed scheme's
    speed-up over the tuned dense all-reduce with overlap, bold where it pays (by more than
    `margin`), italic where every scheme loses by more than `margin`.
    key = "after_ms": the compressed schemes without overlap (one exchange after backward, as
    gradcomp's step() runs today), against the same overlapped dense all-reduce."""
    out = io.StringIO()
    out.write("| model | density | topology | " + " | ".join(f"P={P}" for P in p_values) + " |\n")
    out.write("|---|---:|---|" + "---:|" * len(p_values) + "\n")
    comp = [s for s in SCHEMES if s != "dense"]
    for m in models:
        for dens in densities:
            for t in topo_names:
                cells = []
                for P in p_values:
                    base = _pick(rows, model=m, density=dens, topology=t, P=P, scheme="dense")[0]["step_ms"]
                    times = {s: _pick(rows, model=m, density=dens, topology=t, P=P, scheme=s,
                                      overlap=specs[m].overlap)[0][key] for s in comp}
                    best = min(comp, key=lambda s: times[s])
                    sp = base / times[best]
                    cell = f"{sp:.2f} {SHORT[best]}"
                    v = verdict(sp, margin)
                    cells.append(f"**{cell}**" if v == "pays" else f"*{cell}*" if v == "loses" else cell)
                tn = "flat" if t == "flat" else "2-level"
                out.write(f"| {m} | {dens:g} | {tn} | " + " | ".join(cells) + " |\n")
    return out.getvalue()


def report(rows, args, specs, topos, full=False) -> str:
    out = io.StringIO()
    out.write(f"Network: {args.beta_inter_gbs:g} GB/s and {args.alpha_inter_us:g} us per message between nodes "
              f"(per GPU), {args.beta_intra_gbs:g} GB/s and {args.alpha_intra_us:g} us on NVLink, "
              f"{args.gpus_per_node} GPUs per node in the two-level topology; compression costs: "
              f"{args.device}{' scaled by the bandwidth ratio' if args.device == 'gpu' and not args.gpu_speedup else ''}; "
              f"compute scale {args.compute_scale:g}; overlap rho: "
              + ", ".join(f"{m} {specs[m].overlap:g}" for m in specs) + ".\n\n")
    out.write(f"Best compressed scheme's speed-up over the tuned dense all-reduce with overlap (step time of "
              f"dense / step time of the scheme), the compressed schemes also overlapped per bucket where that "
              f"is faster. **Bold**: pays (>= {1 + args.margin:g}); *italic*: loses (<= {1 - args.margin:g}); "
              f"plain: within {args.margin:g} either way, which this model cannot resolve. AG all-gather Top-k, "
              f"RS sparse reduce-scatter, RD recursive doubling, DS DoubleSqueeze sharded, LIEC LIEC-SGD, "
              f"PSGD PowerSGD.\n\n")
    out.write(summary_table(rows, list(specs), args.densities, list(topos), args.p, specs, args.margin))
    out.write("\nThe same, with every compressed scheme exchanging the whole vector once after backward "
              "(no overlap: how gradcomp's step() runs today), against the same overlapped dense all-reduce:\n\n")
    out.write(summary_table(rows, list(specs), args.densities, list(topos), args.p, specs, args.margin, key="after_ms"))
    if full:
        prm0 = params_from(args, args.densities[0], DEFAULT_OVERLAP)
        for dens in args.densities:
            out.write("\n" + markdown_table(rows, list(specs), dens, list(topos), args.p, prm0, specs, args.margin))
    return out.getvalue()


def write_csv(rows, path):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


COLORS = {"dense": "black", "allgather": "tab:blue", "reduce_scatter": "tab:green", "recursive_doubling": "tab:red",
          "double_squeeze": "tab:purple", "liec": "tab:brown", "powersgd": "tab:orange"}


def plot(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    topos = make_topologies(args)
    models = args.models
    rows = run_grid(args, models, args.densities, topos, args.p)
    write_csv(rows, os.path.join(args.out, "scale_model.csv"))
    specs = {m: spec_from(args, m) for m in models}
    with open(os.path.join(args.out, "scale_model.md"), "w") as fh:
        fh.write("# Modelled time per step (scripts/scale_model.py)\n\n")
        fh.write(report(rows, args, specs, topos, full=True))
    written = []
    for m in models:
        spec = specs[m]
        for dens in args.densities:
            fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
            for s in SCHEMES:
                prm = params_from(args, dens, spec.overlap)
                lab = scheme_label(s, prm)
                base = _pick(rows, model=m, density=dens, scheme=s, overlap=spec.overlap, topology="flat")
                axes[0].plot([r["P"] for r in base], [r["down"] for r in base], marker="o", ms=3, color=COLORS[s], label=lab)
                for ax, t in ((axes[1], "flat"), (axes[2], "two_level")):
                    rs = _pick(rows, model=m, density=dens, scheme=s, overlap=spec.overlap, topology=t)
                    ax.plot([r["P"] for r in rs], [r["step_ms"] for r in rs], marker="o", ms=3, color=COLORS[s], label=lab)
                if s in ("reduce_scatter", "recursive_doubling"):
                    lo = _pick(rows, model=m, density=dens, scheme=s, overlap=1.0, topology="flat")
                    hi = _pick(rows, model=m, density=dens, scheme=s, overlap=0.0, topology="flat")
                    axes[0].fill_between([r["P"] for r in lo], [r["down"] for r in lo], [r["down"] for r in hi],
                                         color=COLORS[s], alpha=0.15)
                    for ax, t in ((axes[1], "flat"), (axes[2], "two_level")):
                        lo = _pick(rows, model=m, density=dens, scheme=s, overlap=1.0, topology=t)
                        hi = _pick(rows, model=m, density=dens, scheme=s, overlap=0.0, topology=t)
                        ax.fill_between([r["P"] for r in lo], [r["step_ms"] for r in lo], [r["step_ms"] for r in hi],
                                        color=COLORS[s], alpha=0.15)
            compute = spec.forward_ms + spec.backward_ms
            axes[0].set_title("bytes received per rank and step (traffic_log's downlink)")
            axes[0].set_ylabel("bytes")
            axes[1].set_title("time per step, flat network")
            axes[2].set_title(f"time per step, two-level ({args.gpus_per_node} GPUs per node)")
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
            for ax in axes[1:]:
                ax.axhline(compute, color="grey", ls=":", lw=1, label="compute alone")
                lo, hi = compute * 0.97, ax.get_ylim()[1]
                if hi / lo > 1.5:
                    ax.set_yscale("log")
                    ax.set_ylabel("ms per step (log scale)")
                    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.4g}"))
                    ax.yaxis.set_minor_formatter(NullFormatter())
                else:
                    ax.set_ylabel("ms per step")
                ax.set_ylim(bottom=lo)
            for ax in axes:
                ax.set_xscale("log", base=2)
                ax.set_xlabel("P (ranks)")
                ax.grid(True, which="both", alpha=0.3)
            axes[0].set_yscale("log")
            axes[0].legend(fontsize=7, loc="upper left")
            fig.suptitle(f"{spec.title}, density {dens:g}; bands: overlap rho from 1 (identical Top-k sets) "
                         f"to 0 (disjoint), line: rho = {spec.overlap:g}", fontsize=10)
            fig.tight_layout()
            path = os.path.join(args.out, f"scale_{m}_{str(dens).replace('.', 'p')}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    for p in written + [os.path.join(args.out, "scale_model.csv"), os.path.join(args.out, "scale_model.md")]:
        print(p)


def costs_from(args) -> ComputeCosts:
    return ComputeCosts(device=args.device, gpu_speedup=args.gpu_speedup, gpu_mem_gbs=args.gpu_mem_gbs)


def params_from(args, density, overlap) -> Params:
    return Params(density=density, overlap=overlap, histogram_rounds=args.histogram_rounds,
                  tie_round=args.tie_round, sync_every=args.sync_every, rank=args.rank)


def spec_from(args, name) -> ModelSpec:
    spec = dataclasses.replace(MODEL_SPECS[name])
    if name == "bert_large" and args.bert_heads:
        spec = dataclasses.replace(spec, build=lambda: layers.bert_large(heads=True),
                                   title="BERT-large, BertForPreTraining (d = 336,226,108)")
    scale = args.compute_scale
    spec = dataclasses.replace(spec, forward_ms=spec.forward_ms * scale, backward_ms=spec.backward_ms * scale)
    ov = getattr(args, f"overlap_{name}", None)
    if ov is None:
        ov = args.overlap if args.overlap is not None else spec.overlap
    return dataclasses.replace(spec, overlap=ov)


def add_common(p):
    g = p.add_argument_group("network (defaults: docs/scaling.md)")
    g.add_argument("--alpha-inter-us", type=float, default=5.0, help="network latency per message (us)")
    g.add_argument("--beta-inter-gbs", type=float, default=50.0, help="network bandwidth per GPU and direction (GB/s): NDR 400 Gb/s")
    g.add_argument("--alpha-intra-us", type=float, default=1.0, help="NVLink latency per message (us)")
    g.add_argument("--beta-intra-gbs", type=float, default=450.0, help="NVLink bandwidth per GPU and direction (GB/s): H100 NVLink 4")
    g.add_argument("--gpus-per-node", type=int, default=8)
    g = p.add_argument_group("schemes")
    g.add_argument("--overlap", type=float, default=None,
                   help=f"rho for every model (section 3; default {DEFAULT_OVERLAP:g}, the MLP {MLP_OVERLAP:g})")
    for m in MODEL_SPECS:
        g.add_argument(f"--overlap-{m.replace('_', '-')}", dest=f"overlap_{m}", type=float, default=None,
                       help=f"rho for {m} only")
    g.add_argument("--histogram-rounds", type=int, default=4, help="R of the reduce-scatter selection when needed (<= 4)")
    g.add_argument("--tie-round", action="store_true", help="charge the reduce-scatter's tie-break allgatherv")
    g.add_argument("--sync-every", type=int, default=32, help="LIEC-SGD's H")
    g.add_argument("--rank", type=int, default=4, help="PowerSGD's r")
    g.add_argument("--bert-heads", action="store_true", help="BERT-large with BertForPreTraining's heads")
    g = p.add_argument_group("compute")
    g.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="compression costs: CPU as measured, or scaled to a GPU")
    g.add_argument("--gpu-speedup", type=float, default=0.0, help="GPU / CPU speed of the compression kernels (0: bandwidth ratio)")
    g.add_argument("--gpu-mem-gbs", type=float, default=3350.0, help="GPU memory bandwidth (GB/s): H100 SXM5 HBM3")
    g.add_argument("--compute-scale", type=float, default=1.0, help="multiply every model's forward and backward time")
    g.add_argument("--margin", type=float, default=0.02, help="speed-ups within 1 +- margin count as even")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_plot = sub.add_parser("plot", help="PNG plots, CSV and markdown tables")
    p_plot.add_argument("--out", required=True)
    p_table = sub.add_parser("table", help="markdown table: where compression pays")
    p_bytes = sub.add_parser("bytes", help="bytes per rank and time of every scheme for one model and P")
    p_bytes.add_argument("model", choices=list(MODEL_SPECS))
    p_bytes.add_argument("P", type=int)
    p_bytes.add_argument("--density", type=float, default=0.01)
    p_bytes.add_argument("--topology", choices=["flat", "two_level"], default="flat")
    for p in (p_plot, p_table):
        p.add_argument("--models", nargs="+", default=list(MODEL_SPECS), choices=list(MODEL_SPECS))
        p.add_argument("--densities", nargs="+", type=float, default=DENSITIES)
        p.add_argument("--p", nargs="+", type=int, default=P_VALUES)
    for p in (p_plot, p_table, p_bytes):
        add_common(p)
    p_table.add_argument("--full", action="store_true", help="every scheme's time, not only the summary")
    p_val = sub.add_parser("validate", help="check traced bytes against the model, exactly")
    p_val.add_argument("prefixes", nargs="+")
    p_val.add_argument("--histogram-bytes", type=int, default=None,
                       help="bytes of one selection round each way (the rule: 256 floats, 1024, up to "
                            "d = 2^24; 256 doubles, 2048, above)")
    p_ov = sub.add_parser("estimate-overlap", help="fit rho to recursive-doubling traces")
    p_ov.add_argument("prefixes", nargs="+")
    p_sim = sub.add_parser("simulate-overlap", help="estimate rho for the MLP in numpy (until traces exist)")
    p_sim.add_argument("--ranks", type=int, default=8)
    p_sim.add_argument("--steps", type=int, default=300)
    p_sim.add_argument("--density", type=float, default=0.01)
    p_sim.add_argument("--seed", type=int, default=1)
    p_sim.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args(argv)

    if args.cmd == "validate":
        globals()["HISTOGRAM_OVERRIDE"] = args.histogram_bytes  # None: the rule
        rep = validate(args.prefixes)
        for n in rep.notes:
            print("note:", n)
        if not rep.ok:
            for e in rep.errors[:50]:
                print("MISMATCH:", e, file=sys.stderr)
            if len(rep.errors) > 50:
                print(f"... and {len(rep.errors) - 50} more", file=sys.stderr)
            print(f"FAILED: {len(rep.errors)} mismatches in {rep.steps} steps ({rep.records} rank records, "
                  f"{rep.messages} messages)", file=sys.stderr)
            return 1
        print(f"OK: {rep.steps} steps, {rep.records} rank records, {rep.messages} messages, exchanges "
              f"{sorted(rep.exchanges)}: every message's bytes and every rank's up/down equal the model's exactly; "
              f"{rep.closed_form} steps also match a closed form")
        return 0
    if args.cmd == "estimate-overlap":
        rho, g, n = estimate_overlap(args.prefixes)
        print(f"overlap rho = {rho:.3f} (union exponent g = {g:.3f}, from {n} round messages)")
        return 0
    if args.cmd == "simulate-overlap":
        rho, g, ratio = simulate_mlp_overlap(args.ranks, args.steps, args.density, seed=args.seed, data_dir=args.data)
        print("mean union of m ranks' Top-k sets / k: " + ", ".join(f"m={m}: {r:.3f}" for m, r in ratio.items()))
        print(f"overlap rho = {rho:.3f} (union exponent g = {g:.3f}; disjoint sets would give m)")
        return 0
    if args.cmd == "plot":
        plot(args)
        return 0
    if args.cmd == "table":
        topos = make_topologies(args)
        rows = run_grid(args, args.models, args.densities, topos, args.p)
        specs = {m: spec_from(args, m) for m in args.models}
        print(report(rows, args, specs, topos, full=args.full))
        return 0
    if args.cmd == "bytes":
        spec = spec_from(args, args.model)
        topo = make_topologies(args)[args.topology]
        cc = costs_from(args)
        tensors = spec.tensors()
        d = sum(t.size for t in tensors)
        print(f"{spec.title}, P = {args.P}, density {args.density:g} (k = {k_of(args.density, d)}), "
              f"{args.topology}, overlap rho = {spec.overlap:g}")
        print("| scheme | up (mean) | down (mean) | down (max) | step ms | mode | exposed ms | compress ms | comm ms |")
        print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
        for s in SCHEMES:
            prm = params_from(args, args.density, spec.overlap)
            per = scheme_bytes(s, args.P, tensors, prm)
            up, down = mean_bytes(per)
            st = step_time(s, args.P, spec, topo, cc, prm)
            print(f"| {scheme_label(s, prm)} | {up:,.0f} | {down:,.0f} | {max(v for _, v in per):,.0f} | "
                  f"{st.total * 1e3:.3f} | {st.mode} | {st.exposed * 1e3:.3f} | {st.compress * 1e3:.3f} | {st.comm * 1e3:.3f} |")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
