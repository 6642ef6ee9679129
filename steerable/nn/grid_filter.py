"""A :class:`~steerable.nn.GridConv` filter: the implicit kernel at the grid's taps, assembled
straight into the ``(out, in, k, ..., k)`` layout of ``conv2d`` / ``conv3d``.

The reference construction evaluates the whole kernel, ``(k^d, out, in)`` (each layout mixes and
permutes its MLP output into matrices), and then moves the tap axis last with a second copy.
:class:`GridFilter` starts from the layout's own products instead and places every value once:

* shared basis (:class:`~steerable.nn.kernel.SharedBasisKernel`): per representation pair, the
  enveloped basis kernels ``(k^d, M, rho_o, rho_i)`` are mixed by one matrix product
  ``W (n_out n_in, M) @ basis (M, k^d rho_o rho_i)``; the products of all pairs, concatenated, are
  put into conv layout by one gather whose index map is built at construction (and which also
  applies the kernel's constant factor);
* dense (:class:`~steerable.nn.kernel.DenseKernel`): the MLP output times each column's envelope,
  put into conv layout by one gather.
* shared basis with an MLP that offers ``fixed_points_mlp()`` (the escnn irrep-wise MLP,
  :mod:`steerable.plugins.escnn_backend.fixed_points`) [issue 18]: the MLP's output transposed,
  ``(D, k^d)`` in a few dense products, times the envelope rows ``exp(-|x|^2 / w^2)``, one mixing
  product per pair ``W_t (n_out n_in, M) @ basis_t (M, rho_o rho_i k^d)`` and one permutation of
  rows (taps contiguous) into conv layout; the points' constants (the MLP's view of them, their
  squared radii) are kept per dtype and device while the same points come again.  In training this
  filter is one autograd node (:class:`_FixedTapFilter`, ``GridFilter.fused``): its ~50 ops run
  without autograd, their intermediates on a tape, and the backward is written by hand (the
  products' transposes, the gathers' inverses, the backend's ``backward``), so a step pays no
  per-op autograd bookkeeping; a backward that asks for a graph (``create_graph=True``)
  differentiates the autograd construction of the same ops instead.

The gathers are :func:`~steerable.ops.permute.permute_columns` and
:func:`~steerable.ops.permute.permute_rows` (permutations: their backward is the inverse gather, not
a scatter), so the backward of the whole construction is a few products and
gathers on tensors of the filter's size.  Values and gradients equal the reference
(``kernel(points)`` moved to conv layout) to round-off (``tests/test_grid_filter.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.memo import PointsMemo
from ..ops.permute import permute_columns, permute_rows
from ..ops.transforms import compiling_or_transformed
from .kernel import DenseKernel, ImplicitKernel, SharedBasisKernel
from .kernel._base import form_radius2


def reference_filter(kernel: ImplicitKernel, points: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The filter ``(out, in, k, ..., k)`` from the kernel's matrices ``(k^d, out, in)`` at ``points``."""
    values = kernel(points)
    shape = (kernel.out_type.size, kernel.in_type.size, *([kernel_size] * points.shape[1]))
    return values.permute(1, 2, 0).reshape(shape)


class GridFilter(torch.nn.Module):
    """The filter of ``kernel`` at ``n_points`` fixed points, in conv layout (module docstring).

    Holds only index maps (non-persistent buffers; no parameters): the kernel is passed at each
    call, so the module follows the kernel's current parameters, dtype and device.

    Args:
        kernel: a :class:`~steerable.nn.kernel.SharedBasisKernel` or
            :class:`~steerable.nn.kernel.DenseKernel` (see :meth:`supports`).
        n_points: number of grid taps ``k^d``, in the order of the points given to :meth:`forward`.
    """

    def __init__(self, kernel: ImplicitKernel, n_points: int) -> None:
        super().__init__()
        if not self.supports(kernel):
            raise TypeError(f"GridFilter: no assembly for {type(kernel).__name__}")
        E, d_in = n_points, kernel.in_type.size
        # what the index maps were built for (see fits)
        self._built_for = (type(kernel), kernel.in_type, kernel.out_type, kernel.basis_size, n_points)
        taps = torch.arange(E)
        if isinstance(kernel, SharedBasisKernel):
            # the products of pair t are laid out (out field o, in field i, tap e, a, b)
            targets = []
            for p in kernel.pairs:
                oc = kernel.out_type.channels(p.out_fields).view(len(p.out_fields), p.out_rep.size)
                ic = kernel.in_type.channels(p.in_fields).view(len(p.in_fields), p.in_rep.size)
                entry = oc[:, None, None, :, None] * d_in + ic[None, :, None, None, :]  # (o, i, 1, a, b)
                targets.append((entry * E + taps[None, None, :, None, None]).reshape(-1))
            target_of_flat = torch.cat(targets)
            self.sizes = [
                len(p.out_fields) * len(p.in_fields) * p.out_rep.size * p.in_rep.size * E for p in kernel.pairs
            ]
        else:
            # the MLP output (tap e, column c) holds matrix entry entry_of_flat[c] = inv_perm[c]
            D = len(kernel.perm)
            target_of_flat = (kernel.inv_perm[None, :] * E + taps[:, None]).reshape(-1)
            out_field_of_column = kernel.field_of_channel[kernel.inv_perm // d_in]
            self.register_buffer("out_field_of_column", out_field_of_column, persistent=False)
            self.sizes = [E * D]
        perm = torch.argsort(target_of_flat)  # filter.flatten()[k] = flat[perm[k]]
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", target_of_flat.clone(), persistent=False)
        # the MLP at fixed points as one transposed evaluation (a backend's optional hook), then
        # the envelope and the mixing as one product (see _transposed)
        make = getattr(kernel.mlp, "fixed_points_mlp", None) if isinstance(kernel, SharedBasisKernel) else None
        self.transposed = make() if make is not None else None
        #: with ``transposed``: the filter's forward run without autograd and differentiated by
        #: hand (:class:`_FixedTapFilter`: ~80 autograd nodes fewer per training step); ``False``:
        #: autograd through the same ops (the reference the fused path is tested against)
        self.fused = True
        if self.transposed is not None:
            self._build_mixing_map(kernel)
        self._constants: PointsMemo[tuple[torch.Tensor, torch.Tensor]] = PointsMemo()

    @staticmethod
    def supports(kernel: ImplicitKernel) -> bool:
        """Whether ``kernel``'s layout has an assembly here (the two built-in layouts)."""
        return type(kernel) in (SharedBasisKernel, DenseKernel)

    def _build_mixing_map(self, kernel: SharedBasisKernel) -> None:
        """Index maps for :meth:`_transposed`: the MLP's output rows ``D`` are (pair ``t``, basis
        kernel ``m``, entry ``(a, b)``); pair ``t``'s product ``W_t (n_o n_i, M) @ basis_t (M, ab E)``
        gives rows ``(o, i, a, b)``.  ``mix_order``: the mixing weights (``mixing[t][o, m, i]``,
        concatenated) in ``(t, o, i, m)`` order; ``row_order``: the product row of each filter row
        ``(out channel, in channel)``; ``env_row``: the envelope ``(t, m)`` of each output row."""
        M, d_in = kernel.basis_size, kernel.in_type.size
        order, targets, env_rows = [], [], []
        self.mix_sizes, self.basis_sizes, self.product_rows = [], [], []
        src = 0
        for t, p in enumerate(kernel.pairs):
            ro, ri, n_o, n_i = p.out_rep.size, p.in_rep.size, len(p.out_fields), len(p.in_fields)
            order.append((src + torch.arange(n_o * M * n_i).view(n_o, M, n_i)).transpose(1, 2).reshape(-1))
            oc = kernel.out_type.channels(p.out_fields).view(n_o, 1, ro, 1)
            ic = kernel.in_type.channels(p.in_fields).view(1, n_i, 1, ri)
            targets.append((oc * d_in + ic).reshape(-1))  # the filter row of product row (o, i, a, b)
            env_rows.append(t * M + torch.arange(M).repeat_interleave(ro * ri))
            self.mix_sizes.append(n_o * n_i * M)
            self.basis_sizes.append(M * ro * ri)
            self.product_rows.append(n_o * n_i * ro * ri)
            src += n_o * M * n_i
        mix_order = torch.cat(order)
        self.register_buffer("mix_order", mix_order, persistent=False)
        self.register_buffer("mix_order_inv", torch.argsort(mix_order), persistent=False)
        row_of_product = torch.cat(targets)
        self.register_buffer("row_order", torch.argsort(row_of_product), persistent=False)
        self.register_buffer("row_order_inv", row_of_product, persistent=False)
        self.register_buffer("env_row", torch.cat(env_rows), persistent=False)

    def fits(self, kernel: ImplicitKernel, n_points: int) -> bool:
        """Whether the index maps were built for ``kernel``'s layout, field types (the same objects)
        and basis size, and for ``n_points`` taps (a kernel assigned later may differ)."""
        layout, in_type, out_type, basis_size, n = self._built_for
        return (
            type(kernel) is layout
            and kernel.in_type is in_type
            and kernel.out_type is out_type
            and kernel.basis_size == basis_size
            and n_points == n
        )

    def forward(self, kernel: ImplicitKernel, points: torch.Tensor, kernel_size: int) -> torch.Tensor:
        """``(out, in, k, ..., k)``: the filter of ``kernel`` at ``points`` ``(k^d, d)`` (no attributes)."""
        shape = (kernel.out_type.size, kernel.in_type.size, *([kernel_size] * points.shape[1]))
        if self.transposed is not None and self.transposed.fits(kernel.mlp):
            return self._fixed_taps(kernel, points).view(shape)
        flat = self._shared(kernel, points) if isinstance(kernel, SharedBasisKernel) else self._dense(kernel, points)
        return permute_columns(flat, self.perm, self.inv_perm, kernel._factor(points)).view(shape)

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(): the cached constants are of the old kind
        self._constants.clear()
        return super()._apply(fn, *args, **kwargs)

    def _fixed_taps(self, kernel: SharedBasisKernel, points: torch.Tensor) -> torch.Tensor:
        """``(out * in, E)``: :meth:`_transposed`, through :class:`_FixedTapFilter` (forward
        without autograd, hand-written backward) where it applies: :attr:`fused`, gradients wanted,
        every tensor of the points' dtype and device, not under ``torch.compile``, a ``torch.func``
        transform (they trace autograd's ops instead) or autocast (whose casts autograd undoes)."""
        if (
            self.fused
            and torch.is_grad_enabled()
            and not compiling_or_transformed()
            and not torch.is_autocast_enabled(points.device.type)
        ):
            tensors = self._tensors(kernel)
            dtype, device = points.dtype, points.device
            if any(t.requires_grad for t in tensors) and all(t.dtype == dtype and t.device == device for t in tensors):
                return _FixedTapFilter.apply(self, kernel, points, *tensors)
        return self._transposed(kernel, points)

    def _tensors(self, kernel: SharedBasisKernel) -> list[torch.Tensor]:
        """What :meth:`_transposed` reads from ``kernel``, in its order: the MLP's tensors
        (``transposed.tensors``), ``log_width`` (with an envelope), the mixing weights."""
        assert self.transposed is not None
        modules, params = kernel._modules, kernel._parameters  # (attribute lookups cost ~1 µs each)
        tensors = self.transposed.tensors(modules["mlp"])
        log_width = params.get("log_width")
        if log_width is not None:
            tensors.append(log_width)
        mixing = modules["mixing"]._parameters  # a ParameterList: its parameters, in index order
        tensors += mixing.values() if len(mixing) == len(self.mix_sizes) else list(kernel.mixing)
        return tensors

    def _transposed(
        self,
        kernel: SharedBasisKernel,
        points: torch.Tensor,
        tensors: list[torch.Tensor] | None = None,
        tape: list[Any] | None = None,
    ) -> torch.Tensor:
        """``(out * in, E)``: the filter from the MLP's transposed output ``(D, E)`` (the backend's
        fixed-points evaluator) times the envelope rows, one mixing product per pair (the kernel's
        factor on the weights) and one gather of rows (taps contiguous: conv layout).

        ``tensors``: the values of :meth:`_tensors` to use (default: the kernel's own); ``tape``: a
        list that receives what :meth:`_transposed_backward` needs (a run without autograd, see
        :class:`_FixedTapFilter`)."""
        assert self.transposed is not None
        reach, neg_r2 = self._point_constants(kernel, points)
        tensors = self._tensors(kernel) if tensors is None else tensors
        n_mlp, mixing = self._tensor_split(kernel, len(tensors))
        mlp_tape: list[Any] | None = [] if tape is not None else None
        basis = self.transposed(kernel.mlp, reach, tensors[:n_mlp], mlp_tape)  # (D, E)
        env = inv_w2 = None
        if n_mlp < mixing:  # the envelope exp(-r^2 / w^2) of each row
            inv_w2 = _like(torch.exp(-2.0 * tensors[n_mlp]), basis)
            env = torch.outer(inv_w2.view(-1).index_select(0, self.env_row), neg_r2).exp_()
            basis = basis.mul_(env) if tape is not None else basis * env  # (no autograd: in place)
        factor = kernel._factor(basis)
        weights = _like(torch.cat([w.view(-1) for w in tensors[mixing:]]), basis) * factor
        weights = weights.index_select(0, self.mix_order).split_with_sizes(self.mix_sizes)
        M, E = kernel.basis_size, points.shape[0]
        weights = [w.view(-1, M) for w in weights]  # (n_o n_i, M)
        pieces = [b.view(M, -1) for b in basis.split_with_sizes(self.basis_sizes)]  # (M, rho_o rho_i E)
        products = torch.cat([torch.mm(w, b).view(-1, E) for w, b in zip(weights, pieces)])
        if tape is not None:
            tape += (mlp_tape, basis, env, inv_w2, neg_r2, factor, weights, pieces)
        if tape is not None or not torch.is_grad_enabled():
            return products.index_select(0, self.row_order)  # no graph to record: the plain gather
        return permute_rows(products, self.row_order, self.row_order_inv)

    def _tensor_split(self, kernel: SharedBasisKernel, n_tensors: int) -> tuple[int, int]:
        """How many of :meth:`_tensors` are the MLP's, and where the mixing weights start."""
        mixing = n_tensors - len(self.mix_sizes)
        return mixing - (kernel.log_width is not None), mixing

    def _transposed_backward(
        self,
        kernel: SharedBasisKernel,
        tensors: list[torch.Tensor],
        tape: list[Any],
        grad: torch.Tensor,
        needs: tuple[bool, ...],
    ) -> list[torch.Tensor | None]:
        """The gradients of ``(_transposed(kernel, points, tensors, tape) * grad).sum()`` with
        respect to ``tensors`` (``None`` where ``needs`` is false), from the ``tape`` of that run:
        the products' and gathers' backward by hand, then the backend's
        (``transposed.backward``).  ``grad`` ``(out * in, E)``."""
        assert self.transposed is not None
        mlp_tape, basis, env, inv_w2, neg_r2, factor, weights, pieces = tape
        n_mlp, mixing = self._tensor_split(kernel, len(tensors))
        E = basis.shape[1]
        grads: list[torch.Tensor | None] = [None] * len(tensors)
        g_products = grad.reshape(-1, E).index_select(0, self.row_order_inv).split_with_sizes(self.product_rows)
        g_mats = [g.view(w.shape[0], -1) for g, w in zip(g_products, weights)]  # (n_o n_i, rho_o rho_i E)
        if any(needs[mixing:]):
            g_w = torch.cat([torch.mm(g, b.t()) for g, b in zip(g_mats, pieces)]).view(-1)  # (t, o, i, m)
            g_w = g_w.index_select(0, self.mix_order_inv).mul_(factor).split_with_sizes(self.mix_sizes)
            for k, g in enumerate(g_w, start=mixing):
                if needs[k]:
                    grads[k] = g.view(tensors[k].shape)
        if not any(needs[:mixing]):
            return grads
        g_basis = torch.cat([torch.mm(w.t(), g).view(-1, E) for w, g in zip(weights, g_mats)])  # (D, E)
        if env is not None:
            if needs[n_mlp]:
                g_rows = torch.mv(g_basis * basis, neg_r2)  # d/d(1/w^2) of each row's envelope exp(-r^2/w^2)
                g_inv = torch.zeros_like(inv_w2).view(-1).index_add_(0, self.env_row, g_rows).view(inv_w2.shape)
                grads[n_mlp] = g_inv.mul_(inv_w2).mul_(-2.0)
            g_basis = g_basis * env
        if any(needs[:n_mlp]):
            grads[:n_mlp] = self.transposed.backward(tensors[:n_mlp], mlp_tape, g_basis, needs[:n_mlp])
        return grads

    def _point_constants(self, kernel: SharedBasisKernel, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The points as the MLP sees them (``kernel._within_reach``) and ``-|x|^2``
        (``-|x^T eta x|``) ``(E,)`` as the envelope reads it; kept per dtype and device while the
        same points come again (the same tensor unmodified, or equal values)."""

        def make(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r2 = points.pow(2).sum(-1) if kernel.eta is None else form_radius2(points, kernel.eta)
            return kernel._within_reach(points), -r2

        return self._constants.get(points, make)

    @staticmethod
    def _shared(kernel: SharedBasisKernel, points: torch.Tensor) -> torch.Tensor:
        E, M = points.shape[0], kernel.basis_size
        sizes = [M * p.out_rep.size * p.in_rep.size for p in kernel.pairs]
        # (E, M) per pair; unbind: one backward node (indexing each would zero-fill the whole gradient)
        envs = kernel._envelope(points).unbind(1) if kernel.log_width is not None else None
        products = []
        for t, (piece, w) in enumerate(zip(kernel._mlp_pieces(points, None, sizes), kernel.mixing)):
            basis = piece.view(E, M, -1)  # (E, M, rho_o rho_i)
            if envs is not None:
                basis = basis * envs[t][:, :, None]
            basis = basis.transpose(0, 1).reshape(M, -1)  # (M, E rho_o rho_i)
            mix = w.to(basis).transpose(1, 2).reshape(-1, M)  # (n_out n_in, M)
            products.append((mix @ basis).view(1, -1))
            del piece, basis  # before the next pair's basis is made
        return torch.cat(products, dim=1) if len(products) > 1 else products[0]

    def _dense(self, kernel: DenseKernel, points: torch.Tensor) -> torch.Tensor:
        flat = kernel._mlp_output(points, None)  # (E, D)
        if kernel.log_width is not None:
            flat = flat * kernel._envelope(points).index_select(1, self.out_field_of_column)
        return flat.reshape(1, -1)


class _FixedTapFilter(torch.autograd.Function):
    """:meth:`GridFilter._transposed` as one autograd node: the forward without autograd (its
    intermediates on a tape), the backward by hand (:meth:`GridFilter._transposed_backward`), so a
    training step pays no per-op autograd bookkeeping for the filter's ~80 small ops.

    Inputs: the assembly, the kernel, the points, then the tensors of ``assembly._tensors(kernel)``
    (whose gradients are returned).  A backward asked for a graph (``create_graph=True``, e.g. a
    gradient penalty) differentiates the autograd construction of the same function instead, so
    higher derivatives are exact too.
    """

    @staticmethod
    def forward(
        ctx: Any, assembly: GridFilter, kernel: SharedBasisKernel, points: torch.Tensor, *tensors: torch.Tensor
    ) -> torch.Tensor:
        tape: list[Any] = []
        flat = assembly._transposed(kernel, points, list(tensors), tape)
        ctx.save_for_backward(*tensors)  # also checks they were not modified in place before backward
        ctx.assembly, ctx.kernel, ctx.points, ctx.tape = assembly, kernel, points, tape
        return flat

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        tensors = list(ctx.saved_tensors)
        needs = ctx.needs_input_grad[3:]
        if torch.is_grad_enabled():  # create_graph: the graph of the autograd construction
            wrt = [t for t, need in zip(tensors, needs) if need]
            with torch.enable_grad():
                flat = ctx.assembly._transposed(ctx.kernel, ctx.points, tensors)
            found = iter(torch.autograd.grad(flat, wrt, grad, create_graph=True, allow_unused=True))
            grads = [next(found) if need else None for need in needs]
        else:
            grads = ctx.assembly._transposed_backward(ctx.kernel, tensors, ctx.tape, grad, needs)
        return (None, None, None, *grads)


def _like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in ``like``'s dtype (no op when it is already)."""
    return t if t.dtype == like.dtype else t.to(like.dtype)
