"""How each aten operator carries the Taylor coefficients of `netprobe.analysis.hessian.taylor`.

Every value v(t) of the loss's computation along w + t z is written v0 + v1 t + v2 t^2. A rule reads the
coefficients of an operator's inputs and writes its output's, in one of three forms held by `Context`:
- `params`: a tensor made from parameters alone (a weight, its transpose): v1 only (v2 = 0: w + t z is linear).
- `acts`: a tensor with the batch dimension first: v1 and v2 stacked along it, one (2N, ...) tensor, so an
  operator that treats samples apart (a convolution, a pooling, a ReLU) runs once for both.
- `reduced`: a tensor without the batch dimension (the loss): v1 and v2 stacked in a new first dimension.
Bilinear operators (convolution, matrix product, batch norm's scale) follow (ab)_1 = a1 b0 + a0 b1,
(ab)_2 = a2 b0 + a1 b1 + a0 b2 (b2 = 0 for parameters); piecewise-linear ones (ReLU, max pooling) multiply or
gather by the primal's pattern. A rule that does not know its case raises `Unsupported`.
"""

from __future__ import annotations

import math
import operator

import torch

from netprobe.registries import registrar

aten = torch.ops.aten


class Unsupported(Exception):
    """An operator (or a case of one) without a Taylor rule: the caller falls back to Hessian-vector products."""


class Context:
    """The primal values, the coefficients found so far, the batch size and the per-node constants."""

    def __init__(self, values: dict, batch: int, layout):
        self.val, self.N, self.layout = values, batch, layout
        self.params: dict = {}
        self.acts: dict = {}
        self.reduced: dict = {}
        self.memo: dict = {}

    def const(self, node, key, make):
        """A constant of `node` that depends on the primal values only, made once per batch."""
        found = self.memo.get((node, key))
        if found is None:
            found = self.memo[(node, key)] = make()
        return found

    def has(self, node) -> bool:
        """Whether `node`'s value moves with t."""
        return node in self.params or node in self.acts or node in self.reduced


RULES = {}


rule = registrar(RULES, "Taylor rule")  # @rule(aten.op, ...)


def _channel(t: torch.Tensor, dims: int) -> torch.Tensor:
    return t.view(1, -1, *([1] * (dims - 2)))


def _bilinear(ctx, x, w, apply):
    """Coefficients of apply(x, w), x an activation (or constant), w a parameter tensor (or constant)."""
    N, stacked = ctx.N, ctx.acts.get(x)
    if x in ctx.params or w in ctx.acts or w in ctx.reduced or x in ctx.reduced:
        raise Unsupported("a product whose activation is not its first operand")
    y = apply(stacked, ctx.val[w]) if stacked is not None else None
    if w in ctx.params:
        z0 = apply(ctx.val[x], ctx.params[w])
        if y is None:
            return torch.cat([z0, torch.zeros_like(z0)])
        y[:N] += z0
        y[N:] += apply(stacked[:N], ctx.params[w])
    return y


def _add_bias(ctx, y, bias, shape):
    """Adds a bias parameter's v1 to the first-order half (creating the output if nothing else moved)."""
    if bias is None or bias not in ctx.params:
        return y
    if bias in ctx.acts or bias in ctx.reduced:
        raise Unsupported("a bias that depends on the batch")
    if y is None:
        y = ctx.layout(torch.zeros((2 * shape[0], *shape[1:]), dtype=ctx.val[bias].dtype,
                                   device=ctx.val[bias].device))
    piece = ctx.params[bias]
    y[:ctx.N] += _channel(piece, len(shape)) if len(shape) > 2 else piece
    return y


@rule(aten.convolution.default)
def convolution(ctx, node):
    x, w, b, *rest = node.args
    y = _bilinear(ctx, x, w, lambda i, k: torch.convolution(i, k, None, *rest))
    ctx.acts[node] = _add_bias(ctx, y, b, tuple(ctx.val[node].shape))


@rule(aten.addmm.default, aten.mm.default)
def matmul(ctx, node):
    if node.kwargs or len(node.args) > 3:
        raise Unsupported("addmm with beta or alpha")
    b, x, w = node.args if node.target is aten.addmm.default else (None, *node.args)
    ctx.acts[node] = _add_bias(ctx, _bilinear(ctx, x, w, torch.mm), b, tuple(ctx.val[node].shape))


@rule(aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default)
def batch_norm(ctx, node):
    """Eval-mode batch norm, (x - mean) r w + b with r = 1/sqrt(var + eps): bilinear in (x - mean) r and w."""
    if node.target is aten.native_batch_norm.default:
        x, w, b, mean, var, training, _, eps = node.args
        if training:
            raise Unsupported("batch norm on the batch's statistics")
    else:
        x, w, b, mean, var, _, eps = node.args
    if mean is None or var is None or any(ctx.has(n) for n in (mean, var) if n is not None):
        raise Unsupported("batch norm without fixed running statistics")
    dims, N = ctx.val[x].dim(), ctx.N
    if x in ctx.params or x in ctx.reduced or (w is not None and (w in ctx.acts or w in ctx.reduced)):
        raise Unsupported("batch norm of a parameter, or with a batch-dependent weight")
    r = ctx.const(node, "r", lambda: _channel(torch.rsqrt(ctx.val[var] + eps), dims))
    scale = r if w is None else ctx.const(node, "scale", lambda: r * _channel(ctx.val[w], dims))
    stacked = ctx.acts.get(x)
    out = stacked * scale if stacked is not None else None
    if w is not None and w in ctx.params:
        moved = _channel(ctx.params[w], dims)
        first = ctx.const(node, "xh", lambda: (ctx.val[x] - _channel(ctx.val[mean], dims)) * r) * moved
        if out is None:
            out = torch.cat([first, torch.zeros_like(first)])
        else:
            out[:N] += first
            out[N:] += stacked[:N] * (r * moved)
    ctx.acts[node] = (_add_bias(ctx, out, b, tuple(ctx.val[x].shape)), None, None)


@rule(operator.getitem)
def getitem(ctx, node):
    source, index = node.args
    for form in (ctx.acts, ctx.reduced):
        if source in form and form[source][index] is not None:
            form[node] = form[source][index]


def _times(ctx, stacked, value):
    """stacked * value, where a per-sample value (batch dimension first) multiplies both coefficients."""
    if isinstance(value, torch.Tensor) and ctx.N > 1 and value.dim() == stacked.dim() and value.shape[0] == ctx.N:
        return (stacked.view(2, *value.shape[:1], *stacked.shape[1:]) * value).flatten(0, 1)
    return stacked * value


# Piecewise-linear functions: their slope from the input x, the output y and the operator's other arguments.
SLOPES = {
    aten.relu.default: lambda x, y: y.sign(),  # 1 where the output is positive, else 0
    aten.leaky_relu.default: lambda x, y, slope=0.01: (x > 0).to(x.dtype) * (1 - slope) + slope,
    aten.hardtanh.default: lambda x, y, low=-1.0, high=1.0: ((x > low) & (x < high)).to(x.dtype),
}


@rule(*SLOPES)
def piecewise_linear(ctx, node):
    """f(v)_k = f'(v0) v_k (f'' = 0 almost everywhere)."""
    x, *rest = node.args
    mask = ctx.const(node, "mask", lambda: SLOPES[node.target](ctx.val[x], ctx.val[node], *rest))
    ctx.acts[node] = _times(ctx, _act(ctx, x), mask)


# Smooth pointwise functions: (f', f''/2) from the input x and the primal output y.
SMOOTH = {
    aten.tanh.default: lambda x, y: (1 - y * y, -y * (1 - y * y)),
    aten.sigmoid.default: lambda x, y: (y * (1 - y), y * (1 - y) * (0.5 - y)),
    aten.exp.default: lambda x, y: (y, y / 2),
    aten.reciprocal.default: lambda x, y: (-y * y, y * y * y),
    aten.rsqrt.default: lambda x, y: (-0.5 * y / x, 0.375 * y / (x * x)),
    aten.sqrt.default: lambda x, y: (0.5 / y, -0.125 / (y * x)),
    aten.gelu.default: lambda x, y: _gelu(x),
    aten.silu.default: lambda x, y: _silu(x),
}


def _gelu(x):
    """x Phi(x): f' = Phi + x phi, f'' = phi (2 - x^2)."""
    phi = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * phi, phi * (2 - x * x) / 2


def _silu(x):
    """x s(x): f' = s (1 + x (1 - s)), f'' = s (1 - s) (2 + x (1 - 2 s))."""
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s)), s * (1 - s) * (2 + x * (1 - 2 * s)) / 2


def _smooth(ctx, node, stacked, derivatives):
    """f(v)_1 = f' v1, f(v)_2 = f' v2 + f''/2 v1^2."""
    slope = ctx.const(node, "slope", lambda: derivatives()[0])
    half = ctx.const(node, "half", lambda: derivatives()[1])
    out = _times(ctx, stacked, slope)
    out[ctx.N:] += half * stacked[:ctx.N].square()
    return out


@rule(*SMOOTH)
def smooth(ctx, node):
    x = node.args[0]
    if node.kwargs.get("approximate", "none") != "none":
        raise Unsupported("the tanh approximation of GELU")
    ctx.acts[node] = _smooth(ctx, node, _act(ctx, x), lambda: SMOOTH[node.target](ctx.val[x], ctx.val[node]))


@rule(aten.pow.Tensor_Scalar)
def power(ctx, node):
    x, p = node.args
    ctx.acts[node] = _smooth(ctx, node, _act(ctx, x), lambda: (p * ctx.val[x] ** (p - 1),
                                                               p * (p - 1) / 2 * ctx.val[x] ** (p - 2)))


def _operand(ctx, n):
    """(primal, stacked coefficients or None, a parameter's v1 or None) of an argument."""
    if not isinstance(n, torch.fx.Node):
        return n, None, None
    if n in ctx.reduced:
        raise Unsupported("arithmetic on the loss")
    return ctx.val[n], ctx.acts.get(n), ctx.params.get(n)


@rule(aten.mul.Tensor, aten.div.Tensor)
def multiply(ctx, node):
    """a b, bilinear: (ab)_1 = a1 b0 + a0 b1, (ab)_2 = a2 b0 + a1 b1 + a0 b2; a / b as a times 1 / b."""
    ops = [_operand(ctx, n) for n in node.args[:2]]
    if node.target is aten.div.Tensor:
        b0, stacked, piece = ops[1]
        if piece is not None:
            raise Unsupported("a division by a parameter")
        r0 = 1 / b0
        ops[1] = (r0, None if stacked is None else _smooth(ctx, node, stacked, lambda: (-r0 * r0, r0 * r0 * r0)),
                  None)
    if ops[0][1] is None:
        ops.reverse()
    (a0, stacked, piece), (b0, other, other_piece) = ops
    if stacked is None:
        if piece is not None and other_piece is not None:
            raise Unsupported("a product of parameters")
        ctx.params[node] = piece * b0 if piece is not None else other_piece * a0
        return
    N = ctx.N
    out = _times(ctx, stacked, b0)
    if other is not None or other_piece is not None:
        moved = other_piece if other is None else other[:N]
        out[:N] += a0 * moved
        out[N:] += stacked[:N] * moved
        if other is not None:
            out[N:] += a0 * other[N:]
    ctx.acts[node] = out


def _act(ctx, node):
    found = ctx.acts.get(node)
    if found is None:
        raise Unsupported("an activation operator applied to a parameter")
    return found


@rule(aten.max_pool2d_with_indices.default)
def max_pool(ctx, node):
    """Each output takes the coefficients of the input the primal's maximum came from."""
    index = ctx.val[node][1]
    flat = ctx.const(node, "index", lambda: index.reshape(1, *index.shape[:2], -1).expand(2, -1, -1, -1))
    stacked = _act(ctx, node.args[0])
    picked = stacked.reshape(2, ctx.N, stacked.shape[1], -1).gather(3, flat)
    ctx.acts[node] = (ctx.layout(picked.view(2 * ctx.N, *index.shape[1:])), None)


@rule(aten.add.Tensor, aten.sub.Tensor)
def add(ctx, node):
    a, b = node.args[:2]
    scale = node.kwargs.get("alpha", 1) * (-1 if node.target is aten.sub.Tensor else 1)
    moving = [(n, s) for n, s in ((a, 1), (b, scale)) if isinstance(n, torch.fx.Node) and ctx.has(n)]
    if any(n in ctx.reduced for n, _ in moving):
        raise Unsupported("arithmetic on the loss")
    if all(n in ctx.params for n, _ in moving):
        pieces = [ctx.params[n] * s for n, s in moving]
        ctx.params[node] = pieces[0] if len(pieces) == 1 else pieces[0] + pieces[1]
        return
    like = (2 * ctx.N, *ctx.val[node].shape[1:])
    if any(n in ctx.acts and tuple(ctx.acts[n].shape) != like for n, _ in moving):
        raise Unsupported("an addition that broadcasts an activation")
    acts = [(ctx.acts[n], s) for n, s in moving if n in ctx.acts]
    out = acts[0][0] if acts[0][1] == 1 else acts[0][0] * acts[0][1]
    if len(acts) == 2:
        out = out.add(acts[1][0], alpha=acts[1][1])
    added = [ctx.params[n] * s for n, s in moving if n in ctx.params]
    if added:  # a parameter added to every sample (a position embedding): first order only
        out = out.clone() if out is acts[0][0] else out
        out[:ctx.N] += added[0]
    ctx.acts[node] = out


SAMPLEWISE = {aten.avg_pool2d.default, aten.avg_pool3d.default, aten._adaptive_avg_pool2d.default,
              aten.clone.default, aten.alias.default, aten.neg.default}
# Linear operators with a dimension argument: sample-wise unless it is the batch dimension.
ALONG = {aten.mean.dim, aten.sum.dim_IntList, aten.slice.Tensor, aten.squeeze.dim, aten.unsqueeze.default,
         aten.flatten.using_ints}


@rule(*SAMPLEWISE, *ALONG, aten.constant_pad_nd.default)
def samplewise(ctx, node):
    """A linear operator that treats samples apart: applied once to the stacked coefficients."""
    x, *rest = node.args
    if x in ctx.params:
        ctx.params[node] = node.target(ctx.params[x], *rest, **node.kwargs)
        return
    if node.target in ALONG:
        rank = ctx.val[x].dim() + (node.target is aten.unsqueeze.default)
        dims = rest[0] if rest else 0
        if any(d % rank == 0 for d in ([dims] if isinstance(dims, int) else dims)):
            raise Unsupported(f"{node.target} over the batch dimension")
    if node.target is aten.constant_pad_nd.default:
        rest = [rest[0], 0.0]  # the pad value belongs to the primal
    ctx.acts[node] = ctx.layout(node.target(_act(ctx, x), *rest, **node.kwargs))


@rule(aten.view.default, aten._unsafe_view.default, aten.reshape.default)
def view(ctx, node):
    x, shape = node.args
    if x in ctx.params:
        ctx.params[node] = ctx.params[x].reshape(shape)
        return
    # Row-major, a reshape from and to N rows keeps each sample's values in its row.
    if ctx.val[x].dim() == 0 or ctx.val[x].shape[0] != ctx.N or ctx.val[node].shape[0] != ctx.N:
        raise Unsupported("a reshape that moves the batch dimension")
    ctx.acts[node] = _act(ctx, x).reshape(2 * ctx.N, *ctx.val[node].shape[1:])  # channels-last may need a copy


@rule(aten.t.default, aten.expand.default, aten.permute.default, aten.transpose.int)
def param_only(ctx, node):
    """Layout operators on parameters (a Linear's transposed weight)."""
    x, *rest = node.args
    if x not in ctx.params:
        raise Unsupported(f"{node.target} of an activation")
    ctx.params[node] = node.target(ctx.params[x], *rest)


@rule(aten.cat.default)
def cat(ctx, node):
    parts, dim = node.args[0], (node.args[1] if len(node.args) > 1 else 0)
    if dim % ctx.val[node].dim() == 0 or any(p in ctx.params or p in ctx.reduced for p in parts):
        raise Unsupported("a concatenation of parameters or along the batch")
    pieces = [ctx.acts[p] if p in ctx.acts else
              ctx.const(node, ("zeros", i), lambda p=p: ctx.layout(torch.zeros_like(torch.cat([ctx.val[p]] * 2))))
              for i, p in enumerate(parts)]
    ctx.acts[node] = ctx.layout(torch.cat(pieces, dim))


@rule(aten._log_softmax.default)
def log_softmax(ctx, node):
    """log p = z - lse(z): lse_1 = p.z1, lse_2 = p.z2 + (p.z1^2 - (p.z1)^2) / 2 along `dim`."""
    z, dim = node.args[:2]
    if dim % ctx.val[node].dim() == 0:
        raise Unsupported("a softmax over the batch")
    p = ctx.const(node, "p", lambda: ctx.val[node].exp())
    stacked, N = _act(ctx, z), ctx.N
    z1, z2 = stacked[:N], stacked[N:]
    mean1 = (p * z1).sum(dim, keepdim=True)
    spread = (p * z1.square()).sum(dim, keepdim=True) - mean1.square()
    ctx.acts[node] = torch.cat([z1 - mean1, z2 - (p * z2).sum(dim, keepdim=True) - spread / 2])


@rule(aten.nll_loss_forward.default, aten.nll_loss2d_forward.default)
def nll_loss(ctx, node):
    """Linear in the log-probabilities: each coefficient through the loss (mean or sum: a scalar)."""
    x, *rest = node.args
    stacked, N = _act(ctx, x), ctx.N
    rest = [ctx.val[a] if isinstance(a, torch.fx.Node) else a for a in rest]
    pieces = [node.target(stacked[:N], *rest)[0], node.target(stacked[N:], *rest)[0]]
    if pieces[0].dim() == 0:
        ctx.reduced[node] = (torch.stack(pieces), None)
    else:
        ctx.acts[node] = (torch.cat(pieces), None)


@rule(aten.detach.default)
def detach(ctx, node):
    """A detached value does not move with t (as autograd differentiates it)."""
