"""Equivariant normalisation: per-sample :class:`FieldNorm` and batch statistics :class:`FieldBatchNorm`.

Both divide every field by an invariant (a mean of squared field norms) and subtract means only from
trivial (invariant scalar) channels, so they commute with the group action for any orthogonal
representation.  Channels are on axis 1: point features ``(N, C)``, grid features ``(B, C, X, Y[, Z])``.
"""

from __future__ import annotations

import torch

from ..core.representation import FieldType
from ._fields import FieldLayer, along_axis1

__all__ = ["FieldBatchNorm", "FieldNorm"]


class _AffineFieldLayer(FieldLayer):
    """A learnable scale per field (``weight`` ``(F,)``, init 1) and a bias per trivial field
    (``bias`` ``(T,)``, init 0): invariant scalars, so the affine map stays equivariant."""

    needs_invariant_norms = True  # [issue 16] refused on non-Euclidean groups

    def __init__(self, field_type: FieldType, eps: float, affine: bool) -> None:
        super().__init__(field_type)
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0):
            raise ValueError(f"{type(self).__name__}: eps must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self.affine = bool(affine)
        if self.affine:
            self.weight = torch.nn.Parameter(torch.ones(self.num_fields))
            n_trivial = len(self.trivial_fields)
            self.bias = torch.nn.Parameter(torch.zeros(n_trivial)) if n_trivial else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """Scales back to 1, biases to 0."""
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def _normalise(self, centred: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
        """``centred / sqrt(denom + eps)`` per field (``denom`` ``(B, F, *s)`` or ``(F,)``), then the affine map."""
        scale = torch.rsqrt(denom + self.eps)
        if self.weight is not None:
            w = self.weight.to(centred.dtype)
            scale = scale * (w if scale.ndim == 1 else along_axis1(w, scale.ndim))
        scale = self.to_channels(scale)
        y = centred * (along_axis1(scale, centred.ndim) if scale.ndim == 1 else scale)
        if self.bias is not None:
            bias_f = self.bias.new_zeros(self.num_fields).index_copy(0, self.trivial_fields, self.bias)
            y = y + along_axis1(self.to_channels(bias_f).to(y.dtype), y.ndim)
        return y

    def describe(self) -> str:
        return f"eps={self.eps:g}, affine={self.affine}"


class FieldNorm(_AffineFieldLayer):
    """Per-sample equivariant normalisation (the analogue of LayerNorm), for any group.

    Statistics are taken separately for each sample, i.e. each node of ``(N, C)`` point features and
    each grid location of ``(B, C, *spatial)`` grid features, over that sample's fields:

    * trivial channels (``T`` of them): when ``T >= 2`` their mean ``mu`` is subtracted; they are
      divided by ``sqrt(mean_t (x_t - mu)^2 + eps)`` (LayerNorm over the trivial channels).  With a
      single trivial channel nothing is subtracted (it is divided by ``sqrt(x^2 + eps)``).
    * non-trivial fields (``K`` of them): each is divided by ``sqrt(mean_k |f_k|^2 + eps)``, the RMS
      over the sample's ``K`` non-trivial fields of their norms (nothing is subtracted: a mean of a
      non-trivial field is not invariant).

    Then, with ``affine=True``, field ``k`` is multiplied by ``weight[k]`` and trivial fields get
    ``bias``.  No running statistics: train and eval are identical.  Shapes are preserved.
    """

    def __init__(self, field_type: FieldType, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(field_type, eps, affine)
        self.n_trivial = len(self.trivial_fields)
        self.n_nontrivial = len(self.nontrivial_fields)
        self.register_buffer("channel_trivial", self.to_channels(self.trivial), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.n_trivial >= 2:
            mask = along_axis1(self.channel_trivial, x.ndim).to(x.dtype)
            mu = (x * mask).sum(1, keepdim=True) / self.n_trivial
            x = x - mu * mask
        sq = self.sq_norms(x)  # (B, F, *s)
        trivial = along_axis1(self.trivial, sq.ndim)
        mean_trivial = torch.where(trivial, sq, 0).sum(1, keepdim=True) / max(self.n_trivial, 1)
        mean_other = torch.where(trivial, 0, sq).sum(1, keepdim=True) / max(self.n_nontrivial, 1)
        return self._normalise(x, torch.where(trivial, mean_trivial, mean_other))


class FieldBatchNorm(_AffineFieldLayer):
    """Equivariant batch normalisation with statistics over the batch, for any group.

    Statistics are taken over every axis but the channel axis 1 (all nodes of ``(N, C)``; all samples
    and grid locations of ``(B, C, *spatial)``):

    * trivial channel ``c``: ``(x_c - mean_c) / sqrt(var_c + eps)``, exactly like ``BatchNorm``;
    * non-trivial field ``k``: ``f_k / sqrt(mean |f_k|^2 + eps)`` (the mean squared norm of that field
      over the batch; no mean subtracted).

    Running statistics (``running_mean`` ``(F,)``, zero for non-trivial fields, and ``running_var``
    ``(F,)``: the variance of trivial fields, unbiased, and the mean squared norm of non-trivial ones)
    are updated in training with ``momentum`` (``None``: a cumulative average) when
    ``track_running_stats``, and used in eval; without tracking, eval uses the batch's statistics.
    Then the affine map of :class:`FieldNorm`.  Shapes are preserved.
    """

    def __init__(
        self,
        field_type: FieldType,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(field_type, eps, affine)
        if momentum is not None and not (isinstance(momentum, (int, float)) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"FieldBatchNorm: momentum must be in [0, 1] or None, got {momentum!r}")
        self.momentum = momentum
        self.track_running_stats = bool(track_running_stats)
        channels = torch.tensor(field_type.trivial_channels, dtype=torch.long)
        self.register_buffer("trivial_channels", channels, persistent=False)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_fields))
            self.register_buffer("running_var", torch.ones(self.num_fields))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics cleared, scales back to 1, biases to 0."""
        self.reset_running_stats()
        super().reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        dims = [0] + list(range(2, x.ndim))
        n = x.numel() // x.shape[1]  # values per channel
        if self.training or not self.track_running_stats:
            if n < 2:
                raise ValueError(
                    f"FieldBatchNorm: batch statistics need more than one value per channel, got shape {tuple(x.shape)}"
                )
            channel_mean = x.mean(dims)  # (C,)
            # a trivial field is one channel: its mean is that channel's; non-trivial fields: 0
            mean_f = torch.zeros(self.num_fields, dtype=x.dtype, device=x.device).index_copy(
                0, self.trivial_fields, channel_mean.index_select(0, self.trivial_channels)
            )
            centred = x - along_axis1(self.to_channels(mean_f), x.ndim)
            var_f = self.sq_norms(centred).mean(dims)  # (F,): biased variance / mean squared norm
            if self.training and self.track_running_stats:
                self._update(mean_f.detach(), var_f.detach(), n)
        else:
            mean_f, var_f = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
            centred = x - along_axis1(self.to_channels(mean_f), x.ndim)
        return self._normalise(centred, var_f)

    @torch.no_grad()
    def _update(self, mean_f: torch.Tensor, var_f: torch.Tensor, n: int) -> None:
        self.num_batches_tracked += 1
        # unbiased variance for trivial fields as torch's BatchNorm; squared norms are not centred
        correction = torch.where(self.trivial, n / max(n - 1, 1), 1.0).to(var_f)
        # cumulative average: weight 1 / batches seen, as a tensor (no host synchronisation)
        factor = 1.0 / self.num_batches_tracked.to(var_f) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean_f.to(self.running_mean), factor)
        self.running_var.lerp_((var_f * correction).to(self.running_var), factor)

    def describe(self) -> str:
        return f"{super().describe()}, momentum={self.momentum}, track_running_stats={self.track_running_stats}"
