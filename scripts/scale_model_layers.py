"""The three models of scripts/scale_model.py, as lists of parameter tensors (docs/scaling.md).

Every model is a list of `Tensor`s in the order the framework defines them (PyTorch's
`model.named_parameters()`), which is also the order in which gradcomp's examples concatenate
them into one flat vector. Each tensor carries:

  shape     its exact shape (a convolution's weight is (out, in, kh, kw));
  work      a relative cost of its backward pass, used only to say *when* its gradient becomes
            ready during backward (scale_model.py, "Overlap with backward"): multiply-adds per
            sample of the layer the tensor belongs to (a convolution: out * in * kh * kw *
            H_out * W_out; a linear layer on s tokens: out * in * s; element-wise layers:
            their element count). Only ratios matter.

The shapes are computed from each architecture's definition and the totals asserted:

  mlp          784-128-10 (examples/mlp.hpp), d = 101,770
  resnet50     torchvision.models.resnet50 (v1.5: stride in the 3x3 convolution), d = 25,557,032
  bert_large   HuggingFace BertModel, bert-large-uncased (24 layers, hidden 1024, 16 heads,
               intermediate 4096, vocab 30522, 512 positions, 2 token types), pooler included,
               no pre-training heads: d = 335,141,888. `bert_large(heads=True)` adds
               BertForPreTraining's heads (the MLM transform, its LayerNorm, the decoder bias;
               the decoder weight is tied to the word embeddings; the next-sentence classifier):
               d = 336,226,108.

Standard library only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple
    work: float  # relative backward cost (see the module docstring)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def matrix(self):
        """The (rows, cols) PowerSGD sees (docs/powersgd.md): a convolution's weight is
        (out, in * kh * kw), a linear weight (out, in); a 1-D tensor is (n, 1)."""
        if len(self.shape) == 1:
            return (self.shape[0], 1)
        return (self.shape[0], math.prod(self.shape[1:]))


# --------------------------------------------------------------------------------------------
# (a) The Fashion-MNIST MLP 784-128-10 (examples/mlp.hpp)
# --------------------------------------------------------------------------------------------

MLP_TOTAL = 101_770


def mlp() -> list:
    """W1 128x784, b1 128, W2 10x128, b2 10 (PyTorch's nn.Linear shapes; examples/mlp.hpp
    stores W1 input-major, which changes no count here)."""
    layers = [
        Tensor("fc1.weight", (128, 784), 128 * 784),
        Tensor("fc1.bias", (128,), 128),
        Tensor("fc2.weight", (10, 128), 10 * 128),
        Tensor("fc2.bias", (10,), 10),
    ]
    assert sum(t.size for t in layers) == MLP_TOTAL
    return layers


# --------------------------------------------------------------------------------------------
# (b) ResNet-50, as torchvision.models.resnet50 defines it
# --------------------------------------------------------------------------------------------

RESNET50_TOTAL = 25_557_032


def resnet50(num_classes: int = 1000, image: int = 224) -> list:
    """conv1 7x7/2 (64) + bn1, max-pool /2, then four stages of Bottleneck blocks
    ([3, 4, 6, 3] blocks, widths 64, 128, 256, 512, expansion 4; the stride of a stage's first
    block sits in its 3x3 convolution, as in torchvision, and its 1x1 downsample convolution +
    BatchNorm matches the shapes), global average pool, fc 2048 -> num_classes.
    Convolutions have no bias; every BatchNorm has a weight and a bias (running statistics are
    buffers, not parameters)."""
    layers = []

    def conv(name, cout, cin, k, hw_out):
        layers.append(Tensor(name + ".weight", (cout, cin, k, k), cout * cin * k * k * hw_out * hw_out))

    def bn(name, c, hw_out):
        layers.append(Tensor(name + ".weight", (c,), c * hw_out * hw_out))
        layers.append(Tensor(name + ".bias", (c,), c * hw_out * hw_out))

    hw = image // 2  # conv1 has stride 2
    conv("conv1", 64, 3, 7, hw)
    bn("bn1", 64, hw)
    hw //= 2  # max-pool
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        stride = 1 if stage == 1 else 2
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            s = stride if b == 0 else 1
            hw_in, hw_out = hw, hw // s
            conv(p + ".conv1", planes, inplanes, 1, hw_in)
            bn(p + ".bn1", planes, hw_in)
            conv(p + ".conv2", planes, planes, 3, hw_out)
            bn(p + ".bn2", planes, hw_out)
            conv(p + ".conv3", planes * 4, planes, 1, hw_out)
            bn(p + ".bn3", planes * 4, hw_out)
            if b == 0 and (s != 1 or inplanes != planes * 4):
                conv(p + ".downsample.0", planes * 4, inplanes, 1, hw_out)
                bn(p + ".downsample.1", planes * 4, hw_out)
            inplanes = planes * 4
            hw = hw_out
    layers.append(Tensor("fc.weight", (num_classes, 2048), num_classes * 2048))
    layers.append(Tensor("fc.bias", (num_classes,), num_classes))
    if num_classes == 1000:
        assert sum(t.size for t in layers) == RESNET50_TOTAL, sum(t.size for t in layers)
    return layers


# --------------------------------------------------------------------------------------------
# (c) BERT-large uncased (HuggingFace BertModel / BertForPreTraining)
# --------------------------------------------------------------------------------------------

BERT_LARGE_MODEL_TOTAL = 335_141_888       # BertModel (with its pooler)
BERT_LARGE_PRETRAINING_TOTAL = 336_226_108  # BertForPreTraining (decoder weight tied)


def bert_large_total_by_formula(L=24, h=1024, ff=4096, vocab=30522, pos=512, types=2, heads=False) -> int:
    """The count written out, independently of the layer list:
    embeddings (vocab + pos + types) h + 2h (LayerNorm);
    per layer 4 (h^2 + h) (Q, K, V, attention output) + 2h (LayerNorm) + (h ff + ff) + (ff h + h)
    + 2h (LayerNorm) = 4h^2 + 2 h ff + 9h + ff;
    pooler h^2 + h; heads (optional): h^2 + h + 2h + vocab (transform, LayerNorm, decoder bias)
    + 2h + 2 (next-sentence classifier).
    For bert-large: 31,782,912 + 24 x 12,596,224 + 1,049,600 = 335,141,888 (+ 1,084,220)."""
    emb = (vocab + pos + types) * h + 2 * h
    layer = 4 * h * h + 2 * h * ff + 9 * h + ff
    total = emb + L * layer + h * h + h
    if heads:
        total += h * h + h + 2 * h + vocab + 2 * h + 2
    return total


def bert_large(heads: bool = False, seq: int = 512, L: int = 24, h: int = 1024, n_heads: int = 16,
               ff: int = 4096, vocab: int = 30522, pos: int = 512, types: int = 2) -> list:
    """HuggingFace parameter order. `work` counts multiply-adds per sequence of `seq` tokens:
    a linear layer out * in * seq, self-attention's two batched products 2 * seq^2 * h (put on
    the query weight, the first tensor of the attention block), element-wise tensors
    seq * their size, embeddings seq * h (a gather, scattered back in backward)."""
    assert h % n_heads == 0
    layers = []

    def linear(name, out, inp, extra=0.0):
        layers.append(Tensor(name + ".weight", (out, inp), out * inp * seq + extra))
        layers.append(Tensor(name + ".bias", (out,), out * seq))

    def norm(name):
        layers.append(Tensor(name + ".weight", (h,), h * seq))
        layers.append(Tensor(name + ".bias", (h,), h * seq))

    layers.append(Tensor("embeddings.word_embeddings.weight", (vocab, h), h * seq))
    layers.append(Tensor("embeddings.position_embeddings.weight", (pos, h), h * seq))
    layers.append(Tensor("embeddings.token_type_embeddings.weight", (types, h), h * seq))
    norm("embeddings.LayerNorm")
    for i in range(L):
        p = f"encoder.layer.{i}"
        linear(p + ".attention.self.query", h, h, extra=2 * seq * seq * h)
        linear(p + ".attention.self.key", h, h)
        linear(p + ".attention.self.value", h, h)
        linear(p + ".attention.output.dense", h, h)
        norm(p + ".attention.output.LayerNorm")
        linear(p + ".intermediate.dense", ff, h)
        linear(p + ".output.dense", h, ff)
        norm(p + ".output.LayerNorm")
    layers.append(Tensor("pooler.dense.weight", (h, h), h * h))
    layers.append(Tensor("pooler.dense.bias", (h,), h))
    if heads:
        linear("cls.predictions.transform.dense", h, h)
        norm("cls.predictions.transform.LayerNorm")
        # The decoder (h -> vocab) is tied to the word embeddings; its large product is
        # computed first in backward, so its work goes on its own bias, the last tensor.
        layers.append(Tensor("cls.predictions.bias", (vocab,), vocab * h * seq))
        linear("cls.seq_relationship", 2, h)
    total = sum(t.size for t in layers)
    assert total == bert_large_total_by_formula(L, h, ff, vocab, pos, types, heads), total
    if (L, h, ff, vocab, pos, types) == (24, 1024, 4096, 30522, 512, 2):
        assert total == (BERT_LARGE_PRETRAINING_TOTAL if heads else BERT_LARGE_MODEL_TOTAL), total
    return layers


MODELS = {
    "mlp": mlp,
    "resnet50": resnet50,
    "bert_large": bert_large,
}


if __name__ == "__main__":
    for name, build in MODELS.items():
        ts = build()
        print(f"{name}: {len(ts)} tensors, {sum(t.size for t in ts):,} parameters")
    print(f"bert_large with pre-training heads: {sum(t.size for t in bert_large(heads=True)):,}")
