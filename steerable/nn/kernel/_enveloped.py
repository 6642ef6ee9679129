"""Message sums of enveloped bases that never form the enveloped bases whole.

The shared-basis layout sums, per input representation, the messages ``phi_e x[src_e]^T`` of
the per-edge matrices ``phi = [b_1 * env_1 | b_2 * env_2 | ...]``: the basis kernels ``b_t`` of one
or more representation pairs (the MLP's output), each row block ``m`` scaled by its Gaussian
envelope ``env_t[e, m] = exp(-r2[e] * c[t, m])`` (``r2`` the edge's squared radius, ``c = 1 / w^2``
per basis kernel).  :func:`enveloped_message_sum` makes ``phi`` (and the envelopes) one chunk of
edges at a time, in the forward and again in the backward, so neither ``phi`` nor its gradient
ever exists whole, and writes the gradient of each basis chunk by chunk into its own tensor.

**The widths' gradient without the bases.**  With ``G`` the gradient of the sums ``(n_dst, P, i)``,

    dL/dc[t, m] = -sum_e r2_e <g_phi[e, t, m], phi[e, t, m]> = -<G, S2>_{t, m},
    S2 = message sum of r2_e phi_e,

since ``g_phi[e] = G[dst_e] x[src_e]`` and ``<G[dst_e] x[src_e], psi_e> = <G[dst_e], psi_e x[src_e]^T>``
for any per-edge ``psi``: a contraction with the targets' ``(n_dst, P, i)`` sum ``S2`` (formed in
the forward beside the sum itself), not with the ``(E, P, b)`` bases.  So where neither ``x`` nor
``r2`` needs a gradient (a network's first layer, fixed positions) autograd keeps ``S2`` instead
of the bases (the targets have ``k`` edges each: ``S2`` is ``k |i| / n_i`` times smaller).  ``x``'s
gradient needs ``phi``, ``r2``'s the per-edge ``<g_phi, b>``: then the bases are kept as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ...ops.message import (
    BLOCK_VALUES,
    GPU_BLOCK_VALUES,
    basis_gradient_t,
    edge_products,
    feature_gradient_t,
    targets_gradient_t,
)

#: Values of enveloped bases (and of their gradients) formed at once on the CPU: 512 KiB in float32.
CHUNK_VALUES = 1 << 17
#: The same on a GPU, where each chunk costs kernel launches: 64 MiB.
GPU_CHUNK_VALUES = 1 << 24
#: Whether the widths' gradient comes from the targets' sum ``S2`` (module docstring) where the
#: bases are not needed otherwise; ``False``: the bases are kept for it (the reference path).
WIDTHS_FROM_SUMS = True

#: ``(r2 (E,), c (members, M))``: the envelopes ``exp(-r2[e] * c[t, m])`` of the members' bases.
Envelope = tuple[torch.Tensor, torch.Tensor]


def _ranges(n: int, step: int) -> Iterator[slice]:
    return (slice(start, min(start + step, n)) for start in range(0, n, step))


def _steps(device: torch.device, width: int, product_width: int) -> tuple[int, int]:
    """``(chunk, block)`` edges: a chunk's enveloped bases (``width`` values per edge) within the
    chunk budget, a block's per-edge products (``product_width``) within the block budget; a
    chunk holds whole blocks (at least one)."""
    chunks, blocks = (CHUNK_VALUES, BLOCK_VALUES) if device.type == "cpu" else (GPU_CHUNK_VALUES, GPU_BLOCK_VALUES)
    block = max(1, blocks // max(1, product_width))
    return max(block, max(1, chunks // max(1, width)) // block * block), block


def _envelopes(r2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``exp(-r2[:, None, None] * c)``: the envelopes ``(E, members, M)``."""
    return torch.exp(-r2[:, None, None] * c)


#: :func:`envelope_spread`'s 0/1 matrices by (members' layout, dtype, device): a few per model
_SPREADS: dict[tuple, torch.Tensor] = {}


def envelope_spread(shapes: Sequence[torch.Size], like: torch.Tensor) -> torch.Tensor:
    """``(members M, width)`` 0/1: envelope ``(t, m)`` to each value of row block ``m`` of member
    ``t`` (``shapes[t]`` ``(E, M, k_t)``), cached per layout, dtype and device."""
    key = (tuple(tuple(s[1:]) for s in shapes), like.dtype, like.device)
    spread = _SPREADS.get(key)
    if spread is None:
        blocks = [torch.eye(s[1], dtype=like.dtype, device=like.device).repeat_interleave(s[2], dim=1) for s in shapes]
        spread = _SPREADS[key] = torch.block_diag(*blocks)
    return spread


def spread_per_value(env: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """The envelopes ``(e, members, M)`` of a chunk as ``(e, width)``, one per value of ``phi``: one
    product with the 0/1 ``spread`` (:func:`envelope_spread`), so that every product with an envelope is
    of two tensors of one shape (broadcast over the ``k_t`` values of a row block, the CPU's
    products run ~5x slower)."""
    return env.reshape(env.shape[0], -1) @ spread


def _enveloped(bases: Sequence[torch.Tensor], wide: torch.Tensor | None, rows: slice, width: int) -> torch.Tensor:
    """``phi[rows]`` ``(e, P * b)``: the members' bases ``(e, M, k_t)``, each times its envelopes,
    side by side (``wide``: the chunk's envelopes per value, :func:`spread_per_value`, or ``None``; no copy
    for one member without an envelope)."""
    if len(bases) == 1 and wide is None:
        return bases[0][rows].flatten(1)
    n = rows.stop - rows.start
    out = bases[0].new_empty(n, width)
    at = 0
    for b in bases:
        part = b[rows].flatten(1)
        place = out[:, at : at + part.shape[1]]
        if wide is None:
            place.copy_(part)
        else:
            torch.mul(part, wide[:, at : at + part.shape[1]], out=place)
        at += part.shape[1]
    return out


class _EnvelopedMessageSum(torch.autograd.Function):
    """``message_sum(phi, x, src, dst, n_dst)`` with ``phi`` as in :func:`enveloped_message_sum`,
    formed one chunk of edges at a time.

    Keeps for backward ``x``, the indices, ``r2`` and ``c``, and either the bases (if ``x`` or
    ``r2`` need a gradient, or ``c`` does with :data:`WIDTHS_FROM_SUMS` off) or, for ``c``'s
    gradient alone, the targets' sum ``S2`` (module docstring).  The backward forms each chunk's
    gradient of ``phi`` (and ``phi`` itself where ``x`` needs a gradient) and writes the bases'
    gradients into their own tensors; under ``create_graph`` it uses the same formulas in
    differentiable ops on whole tensors instead (higher derivatives), with the bases made again
    by ``recompute`` where they were not kept.
    """

    @staticmethod
    def forward(
        ctx: Any,
        n_members: int,
        recompute: Callable[[], list[torch.Tensor]] | None,
        x: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
        r2: torch.Tensor | None,
        c: torch.Tensor | None,
        *bases: torch.Tensor,
    ) -> torch.Tensor:
        n_edges, b_size = bases[0].shape[0], x.shape[2]
        width = sum(b.shape[1] * b.shape[2] for b in bases)  # values of phi per edge
        rows, n_in = width // b_size, x.shape[1]
        need = ctx.needs_input_grad
        has_env = c is not None
        want_x, want_r2, want_c = need[2], has_env and need[6], has_env and need[7]
        keep_bases = want_x or want_r2 or (want_c and not WIDTHS_FROM_SUMS)
        from_sums = want_c and not keep_bases
        # summed in the products' (n_dst, i, P) layout (edge_products), returned transposed
        out = x.new_zeros(n_dst, n_in, rows)
        s2 = torch.zeros_like(out) if from_sums else None
        chunk_step, block_step = _steps(x.device, width, rows * n_in)
        envs = _envelopes(r2, c) if has_env else None  # (E, members, M): one op, sliced per chunk
        spread = envelope_spread([b.shape for b in bases], x) if has_env else None
        for chunk in _ranges(n_edges, chunk_step):
            wide = spread_per_value(envs[chunk], spread) if has_env else None
            phi = _enveloped(bases, wide, chunk, width).view(-1, rows, b_size)
            s, d = src[chunk], dst[chunk]
            r = r2[chunk] if from_sums else None
            del wide
            for block in _ranges(phi.shape[0], block_step):
                product = edge_products(phi[block], x, s[block])
                out.index_add_(0, d[block], product)
                if from_sums:  # the product is ours: scaled in place
                    s2.index_add_(0, d[block], product.mul_(r[block, None, None]))
                del product
            del phi
        del envs
        ctx.save_for_backward(x, src, dst, r2, c, *(bases if keep_bases else ()), *((s2,) if from_sums else ()))
        ctx.layout = (n_members, keep_bases, from_sums)
        ctx.shapes = [b.shape for b in bases]
        ctx.recompute = recompute if from_sums else None
        return out.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n_members, keep_bases, from_sums = ctx.layout
        x, src, dst, r2, c, *rest = ctx.saved_tensors
        bases = rest[:n_members] if keep_bases else None
        s2 = rest[-1].transpose(1, 2) if from_sums else None
        need = ctx.needs_input_grad
        has_env = c is not None
        want = (need[2], need[8:], has_env and need[6], has_env and need[7])
        if torch.is_grad_enabled():  # create_graph: differentiable ops on whole tensors
            if bases is None:
                if ctx.recompute is None:
                    raise RuntimeError(
                        "enveloped_message_sum: a backward with create_graph=True needs the bases, which "
                        "were not kept (only the widths needed a gradient): pass recompute="
                    )
                bases = ctx.recompute()
            grads = _differentiable_backward(grad, x, src, dst, ctx.shapes, bases, r2, c, *want)
        else:
            grads = _chunked_backward(grad, x, src, dst, ctx.shapes, bases, r2, c, s2, *want)
        grad_x, grad_bases, grad_r2, grad_c = grads
        return None, None, grad_x, None, None, None, grad_r2, grad_c, *grad_bases


def _chunked_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    shapes: Sequence[torch.Size],
    bases: Sequence[torch.Tensor] | None,
    r2: torch.Tensor | None,
    c: torch.Tensor | None,
    s2: torch.Tensor | None,
    want_x: bool,
    want_b: Sequence[bool],
    want_r2: bool,
    want_c: bool,
) -> tuple[torch.Tensor | None, list[torch.Tensor | None], torch.Tensor | None, torch.Tensor | None]:
    _, rows, n_in = grad.shape
    b_size, n_edges = x.shape[2], src.shape[0]
    width = rows * b_size
    has_env = c is not None
    grad_x_t = x.new_zeros(x.shape[0], b_size, x.shape[1]) if want_x else None  # transposed: (N, b, i)
    grad_bases = [grad.new_empty(shape) if w else None for shape, w in zip(shapes, want_b)]
    # the envelopes' gradient from the bases: <g_phi, b> per (edge, member, basis)
    from_bases = want_r2 or (want_c and s2 is None)
    grad_r2 = grad.new_empty(n_edges) if want_r2 else None
    grad_c = grad.new_zeros(c.shape) if want_c and s2 is None else None
    need_phi_grad = any(want_b) or from_bases
    need_env = has_env and (want_x or any(want_b) or from_bases)
    chunk_step, block_step = _steps(grad.device, width, rows * n_in)
    envs = _envelopes(r2, c) if need_env else None  # (E, members, M): one op, sliced per chunk
    spread = envelope_spread(shapes, grad) if need_env else None
    grad_t = targets_gradient_t(grad, b_size) if need_phi_grad else None
    for chunk in _ranges(n_edges if (want_x or need_phi_grad) else 0, chunk_step):
        s, d = src[chunk], dst[chunk]
        n = chunk.stop - chunk.start
        env = envs[chunk] if need_env else None
        wide = spread_per_value(env, spread) if need_env and (want_x or any(want_b)) else None
        phi = _enveloped(bases, wide, chunk, width).view(n, rows, b_size) if want_x else None
        g_phi = grad.new_empty(n, rows, b_size) if need_phi_grad else None
        for block in _ranges(n, block_step):
            if need_phi_grad:
                part_t = basis_gradient_t(grad, grad_t, d[block], x.index_select(0, s[block]))  # (e, b, P)
                g_phi[block].copy_(part_t.transpose(1, 2))
                del part_t
            if want_x:
                grad_x_t.index_add_(0, s[block], feature_gradient_t(grad.index_select(0, d[block]), phi[block]))
        del phi
        if not need_phi_grad:
            continue
        flat, at = g_phi.view(n, width), 0
        dots = grad.new_empty(len(shapes), n, shapes[0][1]) if from_bases else None  # <g_t, b_t> (t, e, M)
        for t, shape in enumerate(shapes):
            g_t = flat[:, at : at + shape[1] * shape[2]].view(n, *shape[1:])
            at += shape[1] * shape[2]
            if from_bases:
                torch.sum(g_t * bases[t][chunk], dim=-1, out=dots[t])
            if want_b[t]:
                if env is None:
                    grad_bases[t][chunk] = g_t
                else:
                    w = shape[1] * shape[2]
                    torch.mul(flat[:, at - w : at], wide[:, at - w : at], out=grad_bases[t][chunk].view(n, w))
        del g_phi, flat, g_t, wide  # (g_t: a view, would keep this chunk's g_phi beside the next one's)
        if from_bases:  # d env / d c = -r2 env, d env / d r2 = -c env
            dots.mul_(env.transpose(0, 1))
            if grad_c is not None:
                grad_c.sub_(torch.einsum("tem,e->tm", dots, r2[chunk]))
            if want_r2:
                torch.neg(torch.einsum("tem,tm->e", dots, c), out=grad_r2[chunk])
        del dots, env
    if want_c and s2 is not None:
        grad_c = -_member_sums(grad, s2, shapes)
    return (grad_x_t.transpose(1, 2) if want_x else None), grad_bases, grad_r2, grad_c


def _member_sums(grad: torch.Tensor, s2: torch.Tensor, shapes: Sequence[torch.Size]) -> torch.Tensor:
    """``(members, M)``: the sums of ``grad * s2`` ``(n_dst, P, i)`` over the targets, the inputs
    and each basis kernel's rows (member ``t`` has ``M r_t`` rows, basis-major); the product
    formed a chunk of targets at a time."""
    n_dst, rows, n_in = grad.shape
    per_row = grad.new_zeros(rows)
    for chunk in _ranges(n_dst, max(1, CHUNK_VALUES // max(1, rows * n_in))):
        per_row += (grad[chunk] * s2[chunk]).sum((0, 2))
    b_size = sum(s[1] * s[2] for s in shapes) // per_row.shape[0]
    parts = per_row.split([s[1] * s[2] // b_size for s in shapes])
    return torch.stack([p.view(s[1], -1).sum(1) for p, s in zip(parts, shapes)])


def _differentiable_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    shapes: Sequence[torch.Size],
    bases: Sequence[torch.Tensor],
    r2: torch.Tensor | None,
    c: torch.Tensor | None,
    want_x: bool,
    want_b: Sequence[bool],
    want_r2: bool,
    want_c: bool,
) -> tuple[torch.Tensor | None, list[torch.Tensor | None], torch.Tensor | None, torch.Tensor | None]:
    """:func:`_chunked_backward`'s formulas on whole tensors, in differentiable ops (the widths'
    gradient from the bases)."""
    _, rows, _ = grad.shape
    b_size, n_edges = x.shape[2], src.shape[0]
    envs = None if c is None else [torch.exp(-r2[:, None] * c[t]) for t in range(len(shapes))]  # (E, M) each
    g = grad.index_select(0, dst)  # (E, P, i)
    grad_x = None
    if want_x:
        phi = torch.cat(
            [(b if envs is None else b * e[:, :, None]).flatten(1) for b, e in zip(bases, envs or [None] * len(bases))],
            dim=1,
        ).view(n_edges, rows, b_size)
        grad_x = torch.zeros_like(x).index_add(0, src, torch.bmm(g.transpose(1, 2), phi))
    grad_bases: list[torch.Tensor | None] = [None] * len(shapes)
    grad_r2 = grad_c = None
    if any(want_b) or want_r2 or want_c:
        g_phi = torch.bmm(g, x.index_select(0, src)).view(n_edges, rows * b_size)
        parts = g_phi.split([s[1] * s[2] for s in shapes], dim=1)
        dots = []
        for t, (part, shape) in enumerate(zip(parts, shapes)):
            g_t = part.view(shape)
            if want_r2 or want_c:
                dots.append((g_t * bases[t]).sum(-1) * envs[t])  # <g_t, b_t> env_t, (E, M)
            if want_b[t]:
                grad_bases[t] = g_t if envs is None else g_t * envs[t][:, :, None]
        if want_c:
            grad_c = -torch.stack([(q * r2[:, None]).sum(0) for q in dots])
        if want_r2:
            grad_r2 = -sum((q * c[t]).sum(1) for t, q in enumerate(dots))
    return grad_x, grad_bases, grad_r2, grad_c


def enveloped_message_sum(
    bases: Sequence[torch.Tensor],
    envelope: Envelope | None,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    n_dst: int,
    recompute: Callable[[], list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """``message_sum(phi, x, src, dst, n_dst)`` of ``phi = cat_t(bases[t] * env_t[..., None])``.

    Shapes: ``bases[t]`` ``(E, M, k_t)`` with ``k_t = r_t * b`` (member ``t``'s ``M r_t`` rows of
    ``b`` values, row-major); ``envelope`` ``(r2 (E,), c (members, M))`` for the envelopes
    ``env_t[e, m] = exp(-r2[e] * c[t, m])``, or ``None`` (no envelope); ``x`` ``(N, i, b)``, ``src``,
    ``dst`` ``(E,)`` long -> ``(n_dst, P, i)`` with ``P = sum_t M r_t``: the members' rows in order,
    as :func:`~steerable.ops.message.message_sum` of ``phi.view(E, P, b)``.  ``phi`` and its
    gradient exist only one chunk of edges at a time (:data:`CHUNK_VALUES`), the per-edge products
    one block at a time (``BLOCK_VALUES``).  Where only ``c`` (of the envelope, ``x`` and ``r2``)
    needs a gradient the bases are not kept (module docstring); a backward with
    ``create_graph=True`` then calls ``recompute()`` for them (the same tensors, made again with
    autograd on), and fails without it.
    """
    if src.ndim != 1 or dst.shape != src.shape:
        raise ValueError("enveloped_message_sum: src and dst must be (E,) tensors")
    if not bases:
        raise ValueError("enveloped_message_sum: at least one basis expected")
    if x.ndim != 3 or any(b.ndim != 3 or b.shape[0] != src.shape[0] or b.shape[2] % x.shape[2] for b in bases):
        shapes = [tuple(b.shape) for b in bases]
        raise ValueError(
            f"enveloped_message_sum: bases (E, M, r * b) and x (N, i, b) expected, got {shapes}, {tuple(x.shape)}"
        )
    r2 = c = None
    if envelope is not None:
        r2, c = envelope
        m = bases[0].shape[1]
        if r2.shape != (src.shape[0],) or c.shape != (len(bases), m) or any(b.shape[1] != m for b in bases):
            raise ValueError(
                f"enveloped_message_sum: an envelope (r2 ({src.shape[0]},), c ({len(bases)}, M)) for bases of M "
                f"kernels each expected, got {tuple(r2.shape)}, {tuple(c.shape)}"
            )
    return _EnvelopedMessageSum.apply(len(bases), recompute, x, src, dst, n_dst, r2, c, *bases)
