"""SO(3) and O(3) on R^3 through e3nn's irreducible representations.

Conventions (the core's, see :mod:`steerable.core.representation`):

* Group elements are orthogonal ``3 x 3`` matrices ``M`` acting on column vectors ``(x, y, z)``.
  In O(3) an element is stored natively as ``(R, k)`` with ``R`` a rotation and ``k in {0, 1}``,
  ``M = (-1)^k R`` (``k = 1``: the rotation composed with the inversion ``-I``).
* Irreducible representations are labelled like e3nn's: ``(l, p)`` with degree ``l >= 0`` and parity
  ``p = ±1``, the sign by which the inversion acts (``"0e"`` scalar, ``"0o"`` pseudo-scalar, ``"1o"``
  vector, ``"1e"`` pseudo-vector, ``"2e"`` ...).  In SO(3) there is no inversion, so the parity is
  accepted and ignored: ``irrep(1, -1) is irrep(1, +1)``.
* Bases: degree 1 uses the coordinates ``(x, y, z)`` (so ``irrep(1, -1)`` of O(3) and ``irrep(1)``
  of SO(3) *are* the standard representation, with the same matrices as the group elements); degree
  ``l >= 2`` uses e3nn's real basis, in which ``e3nn.o3.spherical_harmonics(l, u)`` of a direction
  ``u`` given in ``(x, y, z)`` transforms by :meth:`E3nnRep.matrices`.  The degree-1 change of
  basis ``E3nnRep.basis`` is read off e3nn's own ``Y_1``, so any ordering of the ``m`` index (such
  as the ``(y, z, x)`` order of e3nn's Wigner convention) stays inside the plugin; for e3nn 0.6.0 it
  comes out as the identity.  Both facts are checked numerically when the module is imported.
* Lookup: ``G.irrep(l, p)``, ``G.irreps(max_frequency)`` / ``G.irreps("4x0e + 2x1o")`` (lists) and
  ``G.field_type("4x0e + 2x1o")`` or ``G.field_type(o3.Irreps("4x0e + 2x1o"))``; identical requests
  return the same object.
* Interop with e3nn (:meth:`E3nnGroup.irreps_of`, :meth:`E3nnGroup.to_e3nn`,
  :meth:`E3nnGroup.from_e3nn`): a field type's channels are laid out as e3nn's ``Irreps`` with the same
  terms in the same order (``mul`` copies of ``2l+1`` channels each), so only the basis inside
  each irrep can differ: a feature vector ``x`` of our layout is e3nn's
  ``E @ x`` with ``E = G.change_of_basis(field_type)``, block-diagonal with each irrep's
  :attr:`E3nnRep.basis` (orthogonal, so the way back is ``E.T``).  With e3nn 0.6.0 ``E`` is the
  identity (its ``l = 1`` order is ``(x, y, z)`` too); versions ordering ``Y_1`` as ``(y, z, x)``
  give the permutation, found from e3nn's own spherical harmonics.  Multiply by ``E`` with
  :meth:`E3nnGroup.to_e3nn` before handing features to an e3nn module, and back with
  :meth:`E3nnGroup.from_e3nn`; never assume the two layouts agree.
* Names: ``"trivial"`` (``0e``) and ``"standard"`` (``1o`` in O(3), ``1`` in SO(3)) match every
  other backend; the other irreps are called ``"e3nn(2e)"``, ``"e3nn(1e)"`` (O(3)) or
  ``"e3nn(2)"`` (SO(3)), because their bases are e3nn's and may differ from another backend's
  irrep of the same degree.  Representations are identified by key (``(group key, l, parity)``);
  only the portable ones (trivial, standard, and the pseudo-scalar ``det``) cross to another
  backend's SO(3)/O(3) (:func:`steerable.core.representation.transfer_rep`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch
from e3nn import o3

from steerable.core.group import Group, GroupElements, same_group
from steerable.core.mlp import KernelMLP, KernelMLPSpec
from steerable.core.representation import FieldType, Rep, transfer_rep


def describe_value(value: Any) -> str:
    """``repr`` (shortened) and type of ``value``, for error messages."""
    text = repr(value)
    return f"{text[:57] + '...' if len(text) > 60 else text} ({type(value).__name__})"


# Tolerance for accepting a matrix as orthogonal in elements_from_matrices (float32 input welcome).
_ORTHO_TOL = 1e-5


@contextlib.contextmanager
def float64_default() -> Iterator[None]:
    """Temporarily make float64 the default dtype.

    e3nn builds its constants (so(3) generators inside ``D_from_matrix``, Wigner-3j buffers of tensor
    products) in the default dtype; under float32 they would cap every float64 computation near 1e-7.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _degree_one_basis() -> torch.Tensor:
    """``A`` with ``e3nn l=1 vector = A @ (x, y, z)``, found from e3nn's own spherical harmonics.

    e3nn promises ``Y(R u) = D(R) Y(u)`` with ``D = Irrep.D_from_matrix(R)``; reading ``Y_1`` on the
    coordinate axes gives the change of basis, whatever ordering a given e3nn version uses.
    """
    axes = torch.eye(3, dtype=torch.float64)
    sh = o3.spherical_harmonics(1, axes, normalize=True, normalization="norm")  # (3 axes, 3 comps)
    basis = sh.T.contiguous()  # column j = e3nn components of axis j
    if not torch.allclose(basis @ basis.T, torch.eye(3, dtype=torch.float64), atol=1e-12):
        raise RuntimeError("e3nn's degree-1 spherical harmonics are not an orthonormal frame")
    return basis


_A1 = _degree_one_basis()


def _check_conventions() -> None:
    """Fail loudly (at backend load) if this e3nn's conventions differ from what the plugin assumes:
    ``A1^T D_1(R) A1 = R`` on ``(x, y, z)``, and ``Y_l(R u) = D_l(R) Y_l(u)`` for ``l = 2``."""
    with float64_default():
        skew = torch.tensor([[0.0, -0.3, 0.5], [0.3, 0.0, -0.7], [-0.5, 0.7, 0.0]])
        rot = torch.linalg.matrix_exp(skew)
        u = torch.tensor([[0.6, -0.2, 0.5]])
        d1 = o3.Irrep(1, 1).D_from_matrix(rot)
        d2 = o3.Irrep(2, 1).D_from_matrix(rot)
        y2, y2_rot = (o3.spherical_harmonics(2, v, normalize=True) for v in (u, u @ rot.T))
    if not torch.allclose(_A1.T @ d1 @ _A1, rot, atol=1e-10):
        raise RuntimeError("unexpected e3nn convention: D_1(R) is not R in the basis of Y_1")
    if not torch.allclose(y2_rot, y2 @ d2.T, atol=1e-10):
        raise RuntimeError("unexpected e3nn convention: Y_2(R u) != D_2(R) Y_2(u)")


_check_conventions()


def _split_elements(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 3, 3)`` orthogonal matrices -> rotations ``R`` ``(n, 3, 3)`` and ``k`` ``(n,)`` long."""
    det = torch.linalg.det(matrices)
    k = (det < 0).long()
    sign = (1 - 2 * k).to(matrices.dtype)
    return matrices * sign[:, None, None], k


class E3nnRep(Rep):
    """An irreducible representation ``(l, p)`` of SO(3) or O(3); size ``2l + 1``.

    Attributes:
        l: degree.
        parity: ``+1`` or ``-1`` in O(3); always ``+1`` in SO(3).
        native: the ``e3nn.o3.Irrep``.
        basis: ``(size, size)`` float64 ``B`` with ``e3nn vector = B @ core vector``; identity for
            ``l != 1`` (the core uses e3nn's basis there), e3nn's ordering of ``(x, y, z)`` for ``l = 1``.
    """

    def __init__(self, group: E3nnGroup, l: int, parity: int, name: str) -> None:
        self.group, self.l, self.parity, self.name = group, l, parity, name
        self.size = 2 * l + 1
        self.is_trivial = l == 0 and parity == 1
        self.native = o3.Irrep(l, parity)
        self.basis = _A1.clone() if l == 1 else torch.eye(self.size, dtype=torch.float64)

    @property
    def label(self) -> str:
        """e3nn's label, ``"2e"``; in SO(3) every irrep is labelled even (``"1e"``)."""
        return str(self.native)

    @property
    def key(self) -> tuple:
        return (self.group.key, "irrep", self.l, self.parity)

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        """``(n, 2l+1, 2l+1)`` float64 matrices in the core basis (``(x, y, z)`` for ``l = 1``)."""
        if elements.group != self.group and not same_group(elements.group, self.group):
            raise ValueError(f"elements of {elements.group!r} given to a representation of {self.group!r}")
        rot, k = _split_elements(elements.matrices)
        if self.l == 0:
            d = torch.ones(len(rot), 1, 1, dtype=torch.float64)
        elif self.l == 1:  # in (x, y, z) the rotation matrix itself: exact, and equal to the elements'
            d = rot.clone()
        else:
            with float64_default():  # e3nn's generators would otherwise be float32
                d = o3.Irrep(self.l, 1).D_from_matrix(rot)  # rotations only: parity is a sign applied below
            d = self.basis.T @ d @ self.basis
        if self.parity == -1:
            d = d * (1 - 2 * k).to(d.dtype)[:, None, None]
        return d.contiguous()


class E3nnGroup(Group):
    """SO(3) (``with_inversion=False``) or O(3) (``with_inversion=True``) on R^3, built from e3nn.

    See the module docstring for the irrep labels, bases and names.
    """

    dim = 3
    backend = "e3nn"
    order = None

    def __init__(self, with_inversion: bool) -> None:
        self.with_inversion = with_inversion
        self.name = "O(3)" if with_inversion else "SO(3)"
        self.native = "O3" if with_inversion else "SO3"
        self._reps: dict[tuple[int, int], E3nnRep] = {}

    # -- representations -------------------------------------------------------------------
    def irrep(self, l: int, parity: int | None = None) -> E3nnRep:
        """The irrep of degree ``l`` and parity ``parity`` (``+1``/``-1``, the inversion's sign).

        O(3): ``parity`` defaults to ``(-1)**l`` (the parity of the spherical harmonics: ``0e``,
        ``1o``, ``2e``...).  SO(3): ``parity`` is accepted and ignored (no inversion to act).
        Identical requests return the same object.
        """
        if not isinstance(l, int) or isinstance(l, bool) or l < 0:
            raise ValueError(f"{self.name}: irrep degree must be an int >= 0, got {l!r}")
        if parity is not None and parity not in (1, -1):
            raise ValueError(f"{self.name}: irrep parity must be +1 or -1, got {parity!r}")
        if not self.with_inversion:
            parity = 1
        elif parity is None:
            parity = (-1) ** l
        key = (l, parity)
        rep = self._reps.get(key)
        if rep is None:
            rep = self._reps[key] = E3nnRep(self, l, parity, self._rep_name(l, parity))
        return rep

    def _rep_name(self, l: int, parity: int) -> str:
        if l == 0 and parity == 1:
            return "trivial"
        if l == 1 and parity == (-1 if self.with_inversion else 1):
            return "standard"
        if self.with_inversion:
            return f"e3nn({l}{'e' if parity == 1 else 'o'})"
        return f"e3nn({l})"

    def irreps(self, max_frequency: int | str = 2) -> list[Rep]:
        """Irreps as a list (the core's ``Group.irreps``), by band limit or by e3nn-style string.

        * ``irreps(2)``: every irrep of degree ``<= 2``, by degree, natural parity ``(-1)**l`` first in O(3):
          ``[0e, 0o, 1o, 1e, 2e, 2o]`` (SO(3): ``[0, 1, 2]``).
        * ``irreps("4x0e + 2x1o + 2e")`` (or an ``o3.Irreps``): each ``[mul x] l [e|o|y]`` term gives ``mul`` copies of
          :meth:`irrep` ``(l, p)`` (``y``: parity ``(-1)**l``; no letter: ``(-1)**l`` in O(3); SO(3)
          ignores the letter).  ``FieldType(G, G.irreps("..."))``, or :meth:`field_type`.
        """
        if isinstance(max_frequency, (str, o3.Irreps, o3.Irrep)):
            return self._parse(max_frequency)
        if not isinstance(max_frequency, int) or max_frequency < 0:
            raise ValueError(f"{self.name}: max_frequency must be an int >= 0, got {max_frequency!r}")
        out = []
        for l in range(max_frequency + 1):
            natural = (-1) ** l
            out += [self.irrep(l, natural), self.irrep(l, -natural)] if self.with_inversion else [self.irrep(l)]
        return out

    def field_type(self, spec: str | o3.Irreps) -> FieldType:
        """``FieldType(G, G.irreps(spec))``, e.g. ``G.field_type("4x0e + 2x1o + 1x2e")`` or
        ``G.field_type(o3.Irreps("4x0e + 2x1o"))`` (the same terms in the same order; SO(3) ignores
        the parities).  The features' basis is ours: see :meth:`to_e3nn` for e3nn's."""
        return FieldType(self, self._parse(spec))

    # -- e3nn interop ----------------------------------------------------------------------
    def irreps_of(self, field_type: FieldType) -> o3.Irreps:
        """The e3nn ``Irreps`` of ``field_type``: its fields in order, consecutive equal irreps merged
        (``0e + 0e + 1o`` -> ``2x0e+1x1o``), so channel ``c`` of a feature is channel ``c`` of
        e3nn's layout (up to the basis inside each irrep: :meth:`change_of_basis`).

        SO(3) has no inversion, so a parity is only a label: the irreps get that of the spherical
        harmonics, ``(-1)**l`` (the standard representation is ``1o``, as e3nn's vectors).
        Fields must be this group's irreps (or the portable trivial/standard/``det`` of another
        backend's SO(3)/O(3)); anything else (a regular or a tensor-product representation) raises
        ``TypeError``.
        """
        terms: list[list] = []
        for rep in self._reps_of(field_type, "irreps_of"):
            parity = rep.parity if self.with_inversion else (-1) ** rep.l
            if terms and terms[-1][1] == (rep.l, parity):
                terms[-1][0] += 1
            else:
                terms.append([1, (rep.l, parity)])
        return o3.Irreps([(mul, ir) for mul, ir in terms])

    def change_of_basis(self, field_type: FieldType) -> torch.Tensor:
        """``(C, C)`` float64 orthogonal ``E`` with ``e3nn features = E @ our features`` (per point),
        block-diagonal with each field's :attr:`E3nnRep.basis`; ``C = field_type.size``."""
        reps = self._reps_of(field_type, "change_of_basis")
        if not reps:
            return torch.zeros(0, 0, dtype=torch.float64)
        return torch.block_diag(*[rep.basis for rep in reps])

    def to_e3nn(self, x: torch.Tensor, field_type: FieldType, axis: int = 1) -> torch.Tensor:
        """Features of ``field_type`` in our basis -> e3nn's basis of :meth:`irreps_of` (``E @ x``
        along ``axis``, the channel axis: 1 for point features ``(N, C)`` and grid features
        ``(B, C, ...)``; e3nn modules expect channels last, so use ``-1`` for ``(..., C)``).
        The shape is unchanged."""
        return self._apply(self.change_of_basis(field_type), x, field_type, axis, "to_e3nn")

    def from_e3nn(self, x: torch.Tensor, field_type: FieldType, axis: int = 1) -> torch.Tensor:
        """The inverse of :meth:`to_e3nn`: e3nn-ordered features of ``irreps_of(field_type)`` -> ours
        (``E.T @ x`` along ``axis``)."""
        return self._apply(self.change_of_basis(field_type).T, x, field_type, axis, "from_e3nn")

    def _apply(self, mat: torch.Tensor, x: torch.Tensor, field_type: FieldType, axis: int, who: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{self.name}.{who}: expected a floating-point tensor, got {describe_value(x)}")
        if not -x.ndim <= axis < x.ndim or x.shape[axis] != field_type.size:
            raise ValueError(
                f"{self.name}.{who}: expected {field_type.size} channels on axis {axis} for "
                f"{field_type!r}, got shape {tuple(x.shape)}"
            )
        moved = x.movedim(axis, -1)
        return (moved @ mat.T.to(x)).movedim(-1, axis)

    def _reps_of(self, field_type: FieldType, who: str) -> list[E3nnRep]:
        if not isinstance(field_type, FieldType):
            raise TypeError(f"{self.name}.{who}: expected a FieldType, got {describe_value(field_type)}")
        return [self.as_e3nn_rep(rep, f"{self.name}.{who}") for rep in field_type.reps]

    def _parse(self, spec: str | o3.Irreps) -> list[Rep]:
        if isinstance(spec, (o3.Irreps, o3.Irrep)):
            return [self.irrep(ir.l, ir.p) for mul, ir in o3.Irreps(spec) for _ in range(mul)]
        if not isinstance(spec, str):
            raise TypeError(
                f'{self.name}: expected irreps as a string ("4x0e + 2x1o") or an e3nn o3.Irreps, '
                f"got {describe_value(spec)}"
            )
        reps: list[Rep] = []
        for term in spec.split("+"):
            found = re.fullmatch(r"\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eoy]?)\s*", term)
            if found is None:
                raise ValueError(f"{self.name}: cannot read irreps term {term!r} in {spec!r}")
            mul, l, p = found.groups()
            parity = {"e": 1, "o": -1, "y": (-1) ** int(l), "": None}[p]
            reps += [self.irrep(int(l), parity)] * int(mul or 1)
        return reps

    def trivial_rep(self) -> E3nnRep:
        return self.irrep(0, 1)

    def portable_reps(self) -> dict[str, Rep]:
        """trivial (``0e``), standard (``1o``; SO(3): ``1``) and ``det`` (the pseudo-scalar ``0o``; in
        SO(3) the trivial representation, as every determinant is 1)."""
        return {"trivial": self.trivial_rep(), "standard": self.standard_rep(), "det": self.irrep(0, -1)}

    def standard_rep(self) -> E3nnRep:
        return self.irrep(1, -1)

    # -- elements --------------------------------------------------------------------------
    def _make(self, rot: torch.Tensor, k: torch.Tensor) -> GroupElements:
        sign = (1 - 2 * k).to(rot.dtype)
        return GroupElements(self, rot * sign[:, None, None], native=(rot, k))

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        """``n`` Haar-random elements: rotations from QR of Gaussian matrices, fair coin inversions (O(3))."""
        gauss = torch.randn(n, 3, 3, dtype=torch.float64, generator=generator)
        q, r = torch.linalg.qr(gauss)
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # Haar on O(3)
        q = q * torch.sign(torch.linalg.det(q))[:, None, None]  # det +1: Haar on SO(3) (odd dim)
        if self.with_inversion:
            k = torch.randint(0, 2, (n,), generator=generator)
        else:
            k = torch.zeros(n, dtype=torch.long)
        return self._make(q, k)

    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        """Elements from ``(n, 3, 3)`` (or one ``(3, 3)``) orthogonal matrices; ValueError names a bad one.

        Matrices within ``1e-5`` of orthogonal (float32 round-off) are accepted and projected onto the
        nearest orthogonal matrix.  SO(3) rejects determinant ``-1``.
        """
        mats = torch.as_tensor(matrices).to(torch.float64)
        if mats.ndim == 2:
            mats = mats[None]
        if mats.ndim != 3 or mats.shape[1:] != (3, 3):
            raise ValueError(f"{self.name}: expected matrices of shape (n, 3, 3), got {tuple(mats.shape)}")
        eye = torch.eye(3, dtype=torch.float64)
        for i, mat in enumerate(mats):
            err = float((mat @ mat.T - eye).abs().max())
            if not err <= _ORTHO_TOL:  # also catches NaN
                raise ValueError(
                    f"{self.name}: matrix {i} is not orthogonal (max |M M^T - I| = {err:.2e}): {mat.tolist()}"
                )
            det = float(torch.linalg.det(mat))
            if not self.with_inversion and det < 0:
                raise ValueError(
                    f"{self.name}: matrix {i} has determinant {det:+.3f} (a reflection, not a rotation): {mat.tolist()}"
                )
        # Project onto O(3) (polar factor U V^T, the nearest orthogonal matrix) so that float32 input
        # gives exactly orthogonal elements; the tolerance above bounds how far this moves them.
        u, _, vh = torch.linalg.svd(mats)
        rot, k = _split_elements(u @ vh)
        return self._make(rot, k)

    # -- the equivariant MLP ---------------------------------------------------------------
    def build_kernel_mlp(self, spec: KernelMLPSpec) -> KernelMLP:
        from .mlp import E3nnKernelMLP

        return E3nnKernelMLP(spec)

    def as_e3nn_rep(self, rep: Rep, what: str) -> E3nnRep:
        """``rep`` as one of this group's irreps (another backend's portable reps pass through
        :func:`~steerable.core.representation.transfer_rep`); ``TypeError`` for anything else."""
        try:
            rep = transfer_rep(rep, self, what)
        except ValueError as err:
            raise TypeError(f"the e3nn backend cannot decompose {rep!r} of {rep.group!r}: {err}") from None
        if isinstance(rep, E3nnRep):
            return self.irrep(rep.l, rep.parity)
        raise TypeError(
            f"{what}: the e3nn backend cannot decompose {rep!r} of {rep.group!r}; use irreps of "
            f"st.group({self.name!r}, backend='e3nn') (or trivial/standard reps of any backend)"
        )


def build_group(dim: int, with_inversion: bool, **params: Any) -> E3nnGroup:
    """The registry's ``build`` for SO(3) / O(3); no parameters are understood."""
    if dim != 3:
        raise ValueError(f"the e3nn backend builds {'O(3)' if with_inversion else 'SO(3)'} on R^3 only, not R^{dim}")
    if params:
        raise ValueError(
            f"the e3nn backend's {'O(3)' if with_inversion else 'SO(3)'} takes no parameters, got {sorted(params)}"
        )
    return E3nnGroup(with_inversion)
