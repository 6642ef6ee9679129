"""The shared-basis layout: ``M`` basis kernels per pair of representations, mixed per pair of fields."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

from ...core.representation import FieldType, Rep
from ...ops.message import message_sum
from ...ops.mixed import mixed_message
from ...ops.permute import permute_columns
from ...ops.transforms import compiling_or_transformed
from ._base import BASIS_SIZE, EnvelopeWidth, ImplicitKernel, Segment
from ._enveloped import envelope_spread, enveloped_message_sum, spread_per_value

#: Basis values (edges x values per edge) up to which the pairs sharing an input representation
#: are summed together with autograd on (:meth:`SharedBasisKernel.message_and_aggregate`): 2 MiB
#: in float32.
MERGE_VALUES = 1 << 19
#: The same in inference, where the merged buffer lives from its first pair's basis to its last
#: one's (the MLP makes the pairs output representation first) beside the other pairs': 1 MiB.
INFERENCE_MERGE_VALUES = 1 << 18
#: Whether eager calls use :func:`~._enveloped.enveloped_message_sum` (training, and the pairs
#: summed on their own) and the in-place buffer (merged pairs in inference); ``False``: products
#: and concatenations of whole tensors and ``message_sum``, the path of compiled graphs (and the
#: reference of the tests).
FUSED_SUMS = True


class RepPair(NamedTuple):
    """One (output representation, input representation) pair of a :class:`SharedBasisKernel`."""

    #: output representation and the output fields that carry it
    out_rep: Rep
    out_fields: list[int]
    #: input representation and the input fields that carry it
    in_rep: Rep
    in_fields: list[int]
    #: first channel of ``in_fields`` in the input laid out by representation (``input_order``)
    in_offset: int


class SharedBasisKernel(ImplicitKernel):
    """Implicit kernel with a basis shared by all fields of the same representations (``basis_size=M``).

    Fields are grouped by representation (:attr:`pairs`, one :class:`RepPair` per pair of an output
    representation ``rho_o`` and an input representation ``rho_i``); for every pair the MLP emits
    ``M`` basis kernels ``phi_m(x, a)`` of type ``rho_o ⊗ rho_i``, each multiplied by its envelope
    ``exp(-|x|^2 / w_{pair, m}^2)`` (``log_width`` ``(pairs, M)``), and the block of output field
    ``o`` and input field ``i`` is ``gain / sqrt(in_type.size) * sum_m W[o, m, i] phi_m`` with the
    learned ``W = mixing[pair]`` ``(len(out_fields), M, len(in_fields))``.  The MLP output no longer
    grows with the number of fields (``M`` per representation pair instead of one per field pair).
    A scalar mix of kernels of one type is equivariant; every block still reaches the whole space
    the symmetry allows (each ``phi_m`` does, :mod:`steerable.core.mlp`).

    The messages never build the ``(E, out, in)`` kernel.  Per edge (:meth:`message`), each pair
    applies its basis kernels and its mixing to the input fields in the cheaper of two orders
    (:func:`steerable.ops.mixed.mixed_message`: the basis kernels first, ``M x rho_o.size x
    len(in_fields)`` responses, or the mixing first, ``M x rho_i.size x len(out_fields)`` mixed
    fields).  Summed at the targets (:meth:`message_and_aggregate`), the responses are summed first
    and the mixing, linear and the same everywhere, runs once per target.  See
    :class:`ImplicitKernel` for the operations, shapes and arguments.
    """

    pairs: list[RepPair]

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        attr_type: FieldType | int | None = None,
        *,
        basis_size: int = BASIS_SIZE,
        max_radius: float | None = None,
        envelope_width: EnvelopeWidth = "auto",
        normalize: bool = True,
        **mlp: Any,
    ) -> None:
        if basis_size is None:
            raise ValueError("SharedBasisKernel: basis_size must be a positive int (None is the dense layout)")
        super().__init__(in_type, out_type, attr_type, basis_size=basis_size, max_radius=max_radius)
        M = basis_size
        out_groups, in_groups = out_type.by_rep(), in_type.by_rep()
        in_offsets = torch.tensor([0] + [r.size * len(f) for r, f in in_groups]).cumsum(0).tolist()
        self.pairs = [
            RepPair(ro, outs, ri, ins, in_offsets[k])
            for ro, outs in out_groups
            for k, (ri, ins) in enumerate(in_groups)
        ]
        # pairs of one output representation (consecutive), and pairs sharing an input
        # representation with their basis values per edge
        self._by_output: list[list[int]] = []
        for t, p in enumerate(self.pairs):
            if t and p.out_fields == self.pairs[t - 1].out_fields:
                self._by_output[-1].append(t)
            else:
                self._by_output.append([t])
        self._by_input: dict[int, list[int]] = {}
        for t, p in enumerate(self.pairs):
            self._by_input.setdefault(p.in_offset, []).append(t)
        self._input_values = {
            off: M * sum(self.pairs[t].out_rep.size * self.pairs[t].in_rep.size for t in members)
            for off, members in self._by_input.items()
        }
        # rows (M out_rep) of each member's basis in its input representation's merged sum, and
        # where each member's rows start there
        self._merged_widths = {
            off: [M * self.pairs[t].out_rep.size for t in members] for off, members in self._by_input.items()
        }
        self._merged_start = {
            t: sum(widths[:k]) for off, widths in self._merged_widths.items() for k, t in enumerate(self._by_input[off])
        }
        self.mixing = torch.nn.ParameterList(
            torch.nn.Parameter(torch.empty(len(p.out_fields), M, len(p.in_fields))) for p in self.pairs
        )
        self._reset_layout()
        # input channels grouped by representation, and output channels back to field order
        input_order = in_type.channels([k for _, f in in_groups for k in f])
        self.register_buffer("input_order", input_order, persistent=False)
        grouped_out = out_type.channels([k for _, f in out_groups for k in f])
        self.register_buffer("output_order", torch.argsort(grouped_out), persistent=False)
        # fields already grouped by representation (e.g. all scalars, then all vectors): no reordering
        self._inputs_grouped = bool(torch.equal(input_order, torch.arange(in_type.size)))
        self._outputs_grouped = bool(torch.equal(grouped_out, torch.arange(out_type.size)))
        segments = [Segment(p.out_fields, p.in_fields) for p in self.pairs]
        blocks = tuple((p.out_rep, p.in_rep) for p in self.pairs for _ in range(M))
        self._build(blocks, segments, (len(self.pairs), M), envelope_width, normalize, mlp)

    @torch.no_grad()
    def _reset_layout(self) -> None:
        # W[o, m, i] ~ N(0, 1/M): a block sums M basis kernels, so it starts at their scale
        for w in self.mixing:
            w.copy_(torch.randn(w.shape) / math.sqrt(self.basis_size))

    def _basis(self, pos: torch.Tensor, attr: torch.Tensor | None) -> Iterator[torch.Tensor]:
        """Basis kernels with their envelopes, one ``(E, M, out_rep, in_rep)`` tensor per pair.

        Made one pair at a time where the MLP hands out its output in pieces (``_mlp_pieces``), so
        each pair's basis can be freed once used.
        """
        n, M = pos.shape[0], self.basis_size
        parts = self._basis_parts(pos, attr)
        for p in self.pairs:  # next(), not zip(): its result tuple would keep the last pair's basis
            b, env = next(parts)
            yield (b if env is None else b * env).view(n, M, p.out_rep.size, p.in_rep.size)
            del b, env  # before the next pair's are made

    def _basis_parts(
        self, pos: torch.Tensor, attr: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per pair the basis kernels ``(E, M, out_rep.size * in_rep.size)`` without their envelopes
        and the envelope ``(E, M, 1)`` (``None`` without one): their product is :meth:`_basis`.

        Three dimensions, not ``(E, M, out_rep, in_rep)`` times ``(E, M, 1, 1)``: torch's CPU
        product broadcast over two short inner dimensions runs ~2x slower than over one.
        """
        n, M = pos.shape[0], self.basis_size
        sizes = [M * p.out_rep.size * p.in_rep.size for p in self.pairs]
        parts = iter(self._mlp_pieces(pos, attr, sizes))
        # one (E, M) envelope per pair by unbind (its backward is one stack, not a zero-filled
        # gradient per pair as indexing's)
        envs = self._envelope(pos).unbind(1) if self.log_width is not None else None
        for t, p in enumerate(self.pairs):  # next(), not zip(): its result tuple keeps the last part
            yield next(parts).view(n, M, p.out_rep.size * p.in_rep.size), None if envs is None else envs[t][:, :, None]

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        self._check(pos, attr)
        n_edges = pos.shape[0]
        blocks = [
            torch.einsum("emab,omi->eoaib", b, w.to(b)).flatten(1) for b, w in zip(self._basis(pos, attr), self.mixing)
        ]
        kernel = permute_columns(torch.cat(blocks, dim=1), self.perm, self.inv_perm, self._factor(pos))
        return kernel.view(n_edges, self.out_type.size, self.in_type.size)

    def message(self, pos: torch.Tensor, attr: torch.Tensor | None, x_edge: torch.Tensor) -> torch.Tensor:
        self._check(pos, attr)
        self._check_features(x_edge, pos.shape[0], "x_edge")
        grouped, n, M = self._grouped(x_edge), pos.shape[0], self.basis_size
        factor = self._factor(pos)
        bases = self._basis(pos, attr)
        mixed: list[torch.Tensor] = []  # per output representation (E, out_rep, n_out)
        for members in self._by_output:
            y = None
            for t in members:
                p = self.pairs[t]
                b = next(bases).view(n, M, p.out_rep.size, p.in_rep.size)
                # the constant factor on the small weights, not on the (E, out) output
                y_t = mixed_message(b, self._pair_features(grouped, p), self.mixing[t].to(b) * factor)
                y = y_t if y is None else y + y_t
                del b  # before the next pair's basis is made (kept by autograd only if needed)
            mixed.append(y)
        return self._outputs(mixed)

    def message_and_aggregate(
        self,
        pos: torch.Tensor,
        attr: torch.Tensor | None,
        x: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
    ) -> torch.Tensor:
        self._check(pos, attr)
        self._check_features(x, None, "x")
        self._check_edges(pos, src, dst, n_dst)
        n, M, grouped = pos.shape[0], self.basis_size, self._grouped(x)
        # pairs that share an input representation and whose bases are small together are summed
        # in one message sum (bases side by side): fewer, larger per-edge products and one gather
        # of their features (a batched matmul of (M |o|) x |i| matrices is much slower for the
        # small ones than for the merged ones).  With autograd on, and for the pairs summed on
        # their own, by enveloped_message_sum: the enveloped bases (and their gradients) exist
        # one chunk of edges at a time, autograd keeps the bases and (r2, 1 / w^2), or, where
        # neither x nor the positions need a gradient, not the bases but the targets' sums the
        # widths' gradient needs (enveloped_message_sum's docstring).  In inference the merged
        # bases are written, envelope applied, into their place in one buffer as they are made
        # (no second basis alive).
        # (compiled or exported: products and concatenations of whole tensors and message_sum;
        # dynamo does not trace writes into a strided out= tensor)
        training = torch.is_grad_enabled()
        eager = FUSED_SUMS and not compiling_or_transformed()
        limit = MERGE_VALUES if training else INFERENCE_MERGE_VALUES
        merged = {
            off: members
            for off, members in self._by_input.items()
            if len(members) > 1 and n * self._input_values[off] <= limit
        }
        sums: list[torch.Tensor | None] = [None] * len(self.pairs)
        held: dict[int, list[tuple[int, torch.Tensor]]] = {}
        buffers: dict[int, torch.Tensor] = {}
        # the envelopes as (r2, 1 / w^2): enveloped_message_sum forms them itself; the
        # other paths take one (E, M, 1) envelope per pair, made on first use
        factors = self._envelope_factors(pos) if self.log_width is not None else None
        envs: tuple[torch.Tensor, ...] | None = None
        sizes = [M * p.out_rep.size * p.in_rep.size for p in self.pairs]
        # next(), not zip(): zip's result tuple would keep the last pair's basis alive while the
        # MLP makes the next one
        pieces = iter(self._mlp_pieces(pos, attr, sizes))
        for t, p in enumerate(self.pairs):
            b = next(pieces).view(n, M, p.out_rep.size * p.in_rep.size)
            members = merged.get(p.in_offset)
            fused = eager and (training or members is None)  # enveloped_message_sum
            buffered = eager and not fused  # inference, merged: written into one buffer
            env = None
            if factors is not None and not fused:
                r2, inv_w2 = factors
                if not training:  # this pair's alone: no (E, pairs, M) tensor alive
                    env = torch.exp(-r2[:, None] * inv_w2[t])[:, :, None]
                else:
                    if envs is None:  # one exp, then unbind (its backward is one stack)
                        envs = torch.exp(-r2.view(-1, 1, 1) * inv_w2).unbind(1)
                    env = envs[t][:, :, None]
            if fused:
                if members is None:
                    sums[t] = self._enveloped_sum([(t, b)], factors, grouped, pos, attr, src, dst, n_dst)
                else:
                    held.setdefault(p.in_offset, []).append((t, b))
            elif buffered:
                self._write_enveloped(buffers, t, b, env)
            else:
                phi = (b if env is None else b * env).view(n, M * p.out_rep.size, p.in_rep.size)
                if members is None:
                    sums[t] = message_sum(phi, self._pair_features(grouped, p), src, dst, n_dst)
                else:
                    held.setdefault(p.in_offset, []).append((t, phi))
                del phi
            if members is not None and t == members[-1]:
                widths = self._merged_widths[p.in_offset]
                if fused:
                    total = self._enveloped_sum(held.pop(p.in_offset), factors, grouped, pos, attr, src, dst, n_dst)
                else:
                    bases = (
                        buffers.pop(p.in_offset) if buffered else torch.cat([h for _, h in held.pop(p.in_offset)], 1)
                    )
                    total = message_sum(bases, self._pair_features(grouped, p), src, dst, n_dst)
                    del bases
                for u, part in zip(members, total.split(widths, dim=1)):
                    sums[u] = part
                del total
            del b, env
        return self._mix(sums)

    def _write_enveloped(
        self, buffers: dict[int, torch.Tensor], t: int, b: torch.Tensor, env: torch.Tensor | None
    ) -> None:
        """Write pair ``t``'s basis ``b`` ``(E, M, out_rep in_rep)`` times ``env`` ``(E, M, 1)`` (or
        ``None``) into its rows of its input representation's merged buffer in ``buffers`` (made
        by the first member).  A method: no view of the buffer outlives the call."""
        p, (n, M, _) = self.pairs[t], b.shape
        buf = buffers.get(p.in_offset)
        if buf is None:
            rows = sum(self._merged_widths[p.in_offset])
            buf = buffers[p.in_offset] = b.new_empty(n, rows, p.in_rep.size)
        start = self._merged_start[t]
        place = buf[:, start : start + M * p.out_rep.size].view(b.shape)  # (n, M, out_rep in_rep)
        if env is None:
            place.copy_(b)
        else:  # the envelopes spread per value first: a product of equal shapes
            wide = spread_per_value(env, envelope_spread([b.shape], b))
            torch.mul(b.view(n, -1), wide, out=place.view(n, -1))

    def _enveloped_sum(
        self,
        parts: list[tuple[int, torch.Tensor]],
        factors: tuple[torch.Tensor, torch.Tensor] | None,
        grouped: torch.Tensor,
        pos: torch.Tensor,
        attr: torch.Tensor | None,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
    ) -> torch.Tensor:
        """The message sum of the bases ``(E, M, out_rep in_rep)`` of pairs ``t`` (``parts``: ``(t,
        basis)``, one input representation), enveloped with ``factors`` (``(r2, 1 / w^2)`` or
        ``None``), rows side by side: ``(n_dst, sum M out_rep, len(in_fields))``."""
        pairs = [t for t, _ in parts]
        envelope = None
        if factors is not None:
            r2, inv_w2 = factors
            step = pairs[1] - pairs[0] if len(pairs) > 1 else 1
            if pairs == list(range(pairs[0], pairs[-1] + 1, step)):  # a strided view (the usual case)
                envelope = (r2, inv_w2[pairs[0] : pairs[-1] + 1 : step])
            else:
                envelope = (r2, inv_w2[pairs])
        features = self._pair_features(grouped, self.pairs[pairs[0]])
        recompute = functools.partial(self._recompute_bases, pos, attr, pairs)  # create_graph without the bases
        return enveloped_message_sum([b for _, b in parts], envelope, features, src, dst, n_dst, recompute)

    def _recompute_bases(self, pos: torch.Tensor, attr: torch.Tensor | None, pairs: list[int]) -> list[torch.Tensor]:
        """The bases ``(E, M, out_rep in_rep)`` of ``pairs``, made again by the MLP (the same values)."""
        n, M = pos.shape[0], self.basis_size
        sizes = [M * p.out_rep.size * p.in_rep.size for p in self.pairs]
        pieces = list(self._mlp_pieces(pos, attr, sizes))
        return [pieces[t].view(n, M, sizes[t] // M) for t in pairs]

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(rows, in)`` with its channels grouped by representation (``input_order``)."""
        return x if self._inputs_grouped else x.index_select(1, self.input_order)

    @staticmethod
    def _pair_features(grouped: torch.Tensor, pair: RepPair) -> torch.Tensor:
        """The input fields of ``pair``: ``(rows, len(in_fields), in_rep.size)`` of the grouped input."""
        width = len(pair.in_fields) * pair.in_rep.size
        part = grouped[:, pair.in_offset : pair.in_offset + width]
        return part.view(grouped.shape[0], len(pair.in_fields), pair.in_rep.size)

    def _mix(self, responses: list[torch.Tensor]) -> torch.Tensor:
        """Responses ``(rows, M out_rep, n_in)``, one per pair -> ``(rows, out)`` in field order, scaled.

        The pairs of one output representation are mixed by one product: their responses side by
        side (one concatenation, which also makes the layout the product needs) times their
        mixing weights side by side.
        """
        n, M = responses[0].shape[0], self.basis_size
        factor = self._factor(responses[0])
        outs = []
        for members in self._by_output:
            p = self.pairs[members[0]]
            ro, n_out = p.out_rep.size, len(p.out_fields)
            # (rows, ro, M, n_in) per pair, side by side along the inputs
            parts = [responses[t].view(n, M, ro, len(self.pairs[t].in_fields)).transpose(1, 2) for t in members]
            width = M * sum(len(self.pairs[t].in_fields) for t in members)  # explicit: rows may be 0
            g = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=3)).reshape(n * ro, width)
            w = self.mixing[members[0]] if len(members) == 1 else torch.cat([self.mixing[t] for t in members], dim=2)
            # the constant factor on the small weights, not on the (rows, out) output
            y = g @ (w.to(g).reshape(n_out, -1) * factor).T
            outs.append(y.view(n, ro, n_out))
        return self._outputs(outs)

    def _outputs(self, mixed: list[torch.Tensor]) -> torch.Tensor:
        """``(rows, out_rep, n_out)`` per output representation -> ``(rows, out)`` in field order."""
        outs = [y.transpose(1, 2).flatten(1) for y in mixed]
        grouped = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return grouped if self._outputs_grouped else grouped.index_select(1, self.output_order)
