"""Message sums of enveloped bases that never form the enveloped bases whole.

The shared-basis layout sums, per input representation, the messages ``phi_e x[src_e]^T`` of
the per-edge matrices ``phi = [b_1 * env_1 | b_2 * env_2 | ...]``: the basis kernels ``b_t`` of one
or more representation pairs (the MLP's output), each row block ``m`` scaled by its envelope
``env_t[e, m]``.  :func:`enveloped_message_sum` makes ``phi`` one chunk of edges at a time, in the
forward and again in the backward, so neither ``phi`` nor its gradient ever exists whole: the
bases and envelopes are what autograd keeps (the envelope's gradient needs the bases anyway), and
the gradient of each basis is written chunk by chunk into its own tensor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...ops.message import BLOCK_VALUES, GPU_BLOCK_VALUES

#: Values of enveloped bases (and of their gradients) formed at once on the CPU: 256 KiB in float32.
CHUNK_VALUES = 1 << 16
#: The same on a GPU, where each chunk costs kernel launches: 64 MiB.
GPU_CHUNK_VALUES = 1 << 24


def _ranges(n: int, step: int) -> Iterator[slice]:
    return (slice(start, min(start + step, n)) for start in range(0, n, step))


def _steps(device: torch.device, width: int, product_width: int) -> tuple[int, int]:
    """``(chunk, block)`` edges: a chunk's enveloped bases (``width`` values per edge) within the
    chunk budget, a block's per-edge products (``product_width``) within the block budget; a
    chunk holds whole blocks (at least one)."""
    chunks, blocks = (CHUNK_VALUES, BLOCK_VALUES) if device.type == "cpu" else (GPU_CHUNK_VALUES, GPU_BLOCK_VALUES)
    block = max(1, blocks // max(1, product_width))
    return max(block, max(1, chunks // max(1, width)) // block * block), block


def _enveloped(
    bases: Sequence[torch.Tensor], envs: Sequence[torch.Tensor] | None, rows: slice, width: int
) -> torch.Tensor:
    """``phi[rows]`` ``(e, P * b)``: the members' bases ``(e, M, k_t)``, each times its envelope
    ``(e, M)``, side by side (no copy for one member without an envelope)."""
    if len(bases) == 1 and envs is None:
        return bases[0][rows].flatten(1)
    n = rows.stop - rows.start
    out = bases[0].new_empty(n, width)
    at = 0
    for t, b in enumerate(bases):
        part = b[rows]
        place = out[:, at : at + part.shape[1] * part.shape[2]].view(part.shape)
        if envs is None:
            place.copy_(part)
        else:
            torch.mul(part, envs[t][rows, :, None], out=place)
        at += part.shape[1] * part.shape[2]
    return out


class _EnvelopedMessageSum(torch.autograd.Function):
    """``message_sum(phi, x, src, dst, n_dst)`` with ``phi`` as in :func:`enveloped_message_sum`,
    formed one chunk of edges at a time.

    Keeps for backward the bases (if the envelopes or ``x`` need a gradient), the envelopes (if
    the bases or ``x`` do), ``x`` and the indices.  The backward forms each chunk's gradient of
    ``phi`` (and ``phi`` itself where ``x`` needs a gradient) and writes the bases' gradients into
    their own tensors; under ``create_graph`` it uses the same formulas in differentiable ops on
    whole tensors instead (higher derivatives).
    """

    @staticmethod
    def forward(
        ctx: Any, n_members: int, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_dst: int, *tensors
    ) -> torch.Tensor:
        bases = tensors[:n_members]
        envs = tensors[n_members:] or None
        n_edges, b_size = bases[0].shape[0], x.shape[2]
        width = sum(b.shape[1] * b.shape[2] for b in bases)  # values of phi per edge
        rows, n_in = width // b_size, x.shape[1]
        need = ctx.needs_input_grad
        want_x = need[1]
        want_b = any(need[5 : 5 + n_members])
        want_env = envs is not None and any(need[5 + n_members :])
        keep_bases = want_env or want_x
        keep_envs = envs is not None and (want_b or want_x)
        ctx.save_for_backward(x, src, dst, *(bases if keep_bases else ()), *(envs if keep_envs else ()))
        ctx.layout = (n_members, keep_bases, keep_envs, envs is not None)
        ctx.shapes = [b.shape for b in bases]
        scalar = b_size == 1
        # scalar inputs: the outer product laid out (e, i, P), the long P innermost (as message_sum)
        out = x.new_zeros(n_dst, n_in, rows) if scalar else x.new_zeros(n_dst, rows, n_in)
        chunk_step, block_step = _steps(x.device, width, rows * n_in)
        for chunk in _ranges(n_edges, chunk_step):
            phi = _enveloped(bases, envs, chunk, width).view(-1, rows, b_size)
            s, d = src[chunk], dst[chunk]
            for block in _ranges(phi.shape[0], block_step):
                f = x.index_select(0, s[block])  # (e, i, b)
                product = f * phi[block].transpose(1, 2) if scalar else torch.bmm(phi[block], f.transpose(1, 2))
                out.index_add_(0, d[block], product)
                del f, product
            del phi
        return out.transpose(1, 2) if scalar else out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n_members, keep_bases, keep_envs, has_envs = ctx.layout
        x, src, dst, *rest = ctx.saved_tensors
        bases = rest[:n_members] if keep_bases else None
        envs = rest[len(rest) - n_members :] if keep_envs else None
        need = ctx.needs_input_grad
        want_x = need[1]
        want_b = need[5 : 5 + n_members]
        want_env = need[5 + n_members :] if has_envs else ()
        # create_graph: differentiable ops on whole tensors
        backward = _differentiable_backward if torch.is_grad_enabled() else _chunked_backward
        grad_x, grad_bases, grad_envs = backward(grad, x, src, dst, ctx.shapes, bases, envs, want_x, want_b, want_env)
        return None, grad_x, None, None, None, *grad_bases, *grad_envs


def _chunked_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    shapes: Sequence[torch.Size],
    bases: Sequence[torch.Tensor] | None,
    envs: Sequence[torch.Tensor] | None,
    want_x: bool,
    want_b: Sequence[bool],
    want_env: Sequence[bool],
) -> tuple[torch.Tensor | None, list[torch.Tensor | None], list[torch.Tensor | None]]:
    _, rows, n_in = grad.shape
    b_size, n_edges = x.shape[2], src.shape[0]
    width = rows * b_size
    grad_x = torch.zeros_like(x) if want_x else None
    grad_bases = [grad.new_empty(shape) if w else None for shape, w in zip(shapes, want_b)]
    grad_envs = [grad.new_empty(shape[:2]) if w else None for shape, w in zip(shapes, want_env)]
    need_phi_grad = any(want_b) or any(want_env)
    chunk_step, block_step = _steps(grad.device, width, rows * n_in)
    for chunk in _ranges(n_edges, chunk_step):
        s, d = src[chunk], dst[chunk]
        n = chunk.stop - chunk.start
        phi = _enveloped(bases, envs, chunk, width).view(n, rows, b_size) if want_x else None
        g_phi = grad.new_empty(n, rows, b_size) if need_phi_grad else None
        for block in _ranges(n, block_step):
            g = grad.index_select(0, d[block])  # (e, P, i)
            if need_phi_grad:
                torch.bmm(g, x.index_select(0, s[block]), out=g_phi[block])
            if want_x:
                grad_x.index_add_(0, s[block], torch.bmm(g.transpose(1, 2), phi[block]))
            del g
        del phi
        if not need_phi_grad:
            continue
        flat, at = g_phi.view(n, width), 0
        for t, shape in enumerate(shapes):
            g_t = flat[:, at : at + shape[1] * shape[2]].view(n, *shape[1:])
            at += shape[1] * shape[2]
            if want_env and want_env[t]:
                torch.sum(g_t * bases[t][chunk], dim=-1, out=grad_envs[t][chunk])
            if want_b[t]:
                if envs is None:
                    grad_bases[t][chunk] = g_t
                else:
                    torch.mul(g_t, envs[t][chunk, :, None], out=grad_bases[t][chunk])
        del g_phi, flat
    return grad_x, grad_bases, grad_envs


def _differentiable_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    shapes: Sequence[torch.Size],
    bases: Sequence[torch.Tensor] | None,
    envs: Sequence[torch.Tensor] | None,
    want_x: bool,
    want_b: Sequence[bool],
    want_env: Sequence[bool],
) -> tuple[torch.Tensor | None, list[torch.Tensor | None], list[torch.Tensor | None]]:
    """:func:`_chunked_backward`'s formulas on whole tensors, in differentiable ops."""
    _, rows, _ = grad.shape
    b_size, n_edges = x.shape[2], src.shape[0]
    g = grad.index_select(0, dst)  # (E, P, i)
    grad_x = None
    if want_x:
        phi = torch.cat(
            [(b if envs is None else b * e[:, :, None]).flatten(1) for b, e in zip(bases, envs or [None] * len(bases))],
            dim=1,
        ).view(n_edges, rows, b_size)
        grad_x = torch.zeros_like(x).index_add(0, src, torch.bmm(g.transpose(1, 2), phi))
    grad_bases: list[torch.Tensor | None] = [None] * len(shapes)
    grad_envs: list[torch.Tensor | None] = [None] * len(shapes)
    if any(want_b) or any(want_env):
        g_phi = torch.bmm(g, x.index_select(0, src)).view(n_edges, rows * b_size)
        parts = g_phi.split([s[1] * s[2] for s in shapes], dim=1)
        for t, (part, shape) in enumerate(zip(parts, shapes)):
            g_t = part.view(shape)
            if want_env and want_env[t]:
                grad_envs[t] = (g_t * bases[t]).sum(-1)
            if want_b[t]:
                grad_bases[t] = g_t if envs is None else g_t * envs[t][:, :, None]
    return grad_x, grad_bases, grad_envs


def enveloped_message_sum(
    bases: Sequence[torch.Tensor],
    envs: Sequence[torch.Tensor] | None,
    x: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    n_dst: int,
) -> torch.Tensor:
    """``message_sum(phi, x, src, dst, n_dst)`` of ``phi = cat_t(bases[t] * envs[t][..., None])``.

    Shapes: ``bases[t]`` ``(E, M_t, k_t)`` with ``k_t = r_t * b`` (member ``t``'s ``M_t r_t`` rows of
    ``b`` values, row-major), ``envs[t]`` ``(E, M_t)`` or ``envs`` ``None`` (no envelope), ``x``
    ``(N, i, b)``, ``src``, ``dst`` ``(E,)`` long -> ``(n_dst, P, i)`` with ``P = sum_t M_t r_t``: the
    members' rows in order, as :func:`~steerable.ops.message.message_sum` of
    ``phi.view(E, P, b)``.  ``phi`` and its gradient exist only one chunk of edges at a time
    (:data:`CHUNK_VALUES`), the per-edge products one block at a time (``BLOCK_VALUES``).
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
    if envs is not None and [tuple(e.shape) for e in envs] != [tuple(b.shape[:2]) for b in bases]:
        raise ValueError("enveloped_message_sum: one (E, M) envelope per basis expected")
    return _EnvelopedMessageSum.apply(len(bases), x, src, dst, n_dst, *bases, *(envs or ()))
