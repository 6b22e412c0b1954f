"""Shapes of a TT-matrix kernel: mode factorizations, TT-ranks and FLOP counts.

A TT-layer stores an ``M x N`` kernel as a TT-matrix with ``d`` cores of shape
``[r_{k-1}, m_k, n_k, r_k]`` where ``M = m_1 ... m_d``, ``N = n_1 ... n_d`` and
``r_0 = r_d = 1`` (Novikov et al. 2015, arXiv 1509.06569, eq. 4). This module
chooses the ``m_k, n_k`` when the user does not, validates the ones they give,
caps TT-ranks at the largest useful rank, and counts the FLOPs of the
two contraction orders of ``tt_matmul`` so the cheaper one can be used.

Everything here is plain Python over integers, run once at ``build`` time.
"""

import math
import numbers

from t3f_ext import utils

DEFAULT_MAX_FACTOR = 8


def _prime_factors(n):
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def _multisets_of_factors(n, num_factors, smallest=1):
    """Yields every non-decreasing tuple of ``num_factors`` ints with product ``n``."""
    if num_factors == 1:
        if n >= smallest:
            yield (n,)
        return
    for f in range(smallest, int(round(n ** (1.0 / num_factors))) + 2):
        if n % f == 0:
            for rest in _multisets_of_factors(n // f, num_factors - 1, f):
                yield (f,) + rest


def _imbalance(factors):
    """Spread of ``log(factors)``: 0 for equal factors (their sum of logs is fixed)."""
    return sum(math.log(f) ** 2 for f in factors)


def balanced_factorizations(n, num_factors):
    """All most-balanced multisets of ``num_factors`` ints whose product is ``n``.

    "Most balanced" minimises the variance of ``log f`` (equivalently, maximises
    how close the factors are to ``n ** (1 / num_factors)``). Ties are returned
    together, sorted ascending inside each tuple, so that a caller can break
    them by FLOPs. Cost: enumerates the divisor tuples, tiny for layer sizes.
    """
    candidates = list(_multisets_of_factors(n, num_factors))
    best = min(_imbalance(c) for c in candidates)
    return [c for c in candidates if _imbalance(c) <= best * (1 + 1e-12) + 1e-12]


def default_num_cores(*dims, max_factor=DEFAULT_MAX_FACTOR):
    """Smallest ``d >= 2`` such that every dim splits into ``d`` factors ``<= max_factor``.

    A prime factor larger than ``max_factor`` raises the bound to that prime.
    Mode sizes of 2..8 are those Novikov et al. use; here 1024 -> 4x4x8x8,
    4096 -> 8x8x8x8 and 25088 -> 7x7x8x8x8.
    """

    def fits(dim, d):
        bound = max([max_factor] + _prime_factors(dim))
        return any(max(c) <= bound for c in _multisets_of_factors(dim, d))

    d = 2
    while not all(fits(dim, d) for dim in dims):
        d += 1
    return d


def padded_factorization(n, num_factors):
    """Balanced factors whose product is ``>= n`` (for embedding rows, Hrinchuk et al.).

    Uses the exact most-balanced factorization of ``n`` when its largest factor
    is at most twice ``ceil(n ** (1/d))``; otherwise starts from ``d`` equal
    factors ``ceil(n ** (1/d))`` and lowers them one by one while the product
    stays ``>= n``, so at most a few percent of rows are padding.
    """
    side = math.ceil(round(n ** (1.0 / num_factors), 9))
    exact = balanced_factorizations(n, num_factors)[0]
    if max(exact) <= 2 * side:
        return exact
    factors = [side] * num_factors
    for k in range(num_factors):
        if math.prod(factors) // side * (side - 1) >= n:
            factors[k] = side - 1
    return tuple(sorted(factors))


def validate_factorization(factors, dim, arg_name, allow_padding=False):
    """Checks a user-given factorization and returns it as a tuple of ints.

    Raises:
      TypeError: if ``factors`` is not a sequence of ints.
      ValueError: if a factor is < 1, or the product is not ``dim`` (or, with
        ``allow_padding``, is smaller than ``dim``). The message gives the numbers.
    """
    if isinstance(factors, (str, bytes)) or not hasattr(factors, "__iter__"):
        raise TypeError(f"`{arg_name}` must be a list of positive ints, got {factors!r}.")
    factors = tuple(factors)
    if not factors or not all(hasattr(f, "__index__") and not isinstance(f, bool) for f in factors):
        raise TypeError(f"`{arg_name}` must be a non-empty list of positive ints, got {factors!r}.")
    factors = tuple(int(f) for f in factors)
    if min(factors) < 1:
        raise ValueError(f"`{arg_name}` must contain positive ints, got {list(factors)}.")
    product = math.prod(factors)
    if allow_padding and product < dim:
        raise ValueError(
            f"`{arg_name}`={list(factors)} has product {product}, which must be >= {dim}."
        )
    if not allow_padding and product != dim:
        raise ValueError(
            f"`{arg_name}`={list(factors)} has product {product}, but the dimension is {dim}."
        )
    return factors


def resolve_output_size(size, output_factorization, size_name):
    """The layer's output size and output factorization, from either or both.

    ``size`` (``units`` / ``filters``) may be None when ``output_factorization``
    is given; then it is the factorization's product. Returns
    ``(size, output_factorization)`` as ``(int, tuple or None)``.

    Raises:
      ValueError: if ``size`` is not a positive int, or the factorization's
        product differs from it (the message gives the numbers).
    """
    if output_factorization is not None:
        product = math.prod(output_factorization) if size is None else size
        output_factorization = validate_factorization(
            output_factorization, product, "output_factorization"
        )
        size = math.prod(output_factorization) if size is None else size
    if size is None or not hasattr(size, "__index__") or isinstance(size, bool) or size < 1:
        raise ValueError(
            f"`{size_name}` must be a positive int (or give `output_factorization`), got {size!r}."
        )
    return int(size), output_factorization


def check_tt_rank(tt_rank):
    """Validates the type and sign of ``tt_rank``; returns an int or a list of ints.

    Raises:
      TypeError: if ``tt_rank`` is neither an int nor a list of ints.
      ValueError: if a rank is < 1.
    """

    def is_int(value):
        return hasattr(value, "__index__") and not isinstance(value, bool)

    if is_int(tt_rank):
        ranks = [int(tt_rank)]
        result = int(tt_rank)
    elif hasattr(tt_rank, "__iter__") and not isinstance(tt_rank, (str, bytes)):
        ranks = list(tt_rank)
        if not ranks or not all(is_int(r) for r in ranks):
            raise TypeError(f"`tt_rank` must be a positive int or a list of ints, got {tt_rank!r}.")
        ranks = [int(r) for r in ranks]
        result = ranks
    else:
        raise TypeError(f"`tt_rank` must be a positive int or a list of ints, got {tt_rank!r}.")
    if min(ranks) < 1:
        raise ValueError(f"`tt_rank` must be positive, got {tt_rank}.")
    return result


def normalize_tt_ranks(tt_rank, row_dims, col_dims):
    """Returns the ``d + 1`` TT-ranks ``[1, r_1, ..., r_{d-1}, 1]``, capped at the useful maximum.

    Args:
      tt_rank: an int (every internal rank), a list of the ``d - 1`` internal
        ranks, or a list of all ``d + 1`` ranks starting and ending with 1
        (T3F's convention).
      row_dims, col_dims: the ``d`` mode sizes ``m_k``, ``n_k``.

    Raises:
      TypeError: naming ``tt_rank`` if it is not an int or a list of ints.
      ValueError: naming ``tt_rank`` if it is not positive or the list has the wrong length.
    """
    num_cores = len(row_dims)
    tt_rank = check_tt_rank(tt_rank)
    if isinstance(tt_rank, int):
        internal = [tt_rank] * (num_cores - 1)
    elif len(tt_rank) == num_cores + 1:
        if tt_rank[0] != 1 or tt_rank[-1] != 1:
            raise ValueError(
                f"`tt_rank` with {num_cores + 1} entries must start and end with 1, got {tt_rank}."
            )
        internal = tt_rank[1:-1]
    elif len(tt_rank) == num_cores - 1:
        internal = tt_rank
    else:
        raise ValueError(
            f"`tt_rank` must have {num_cores - 1} internal ranks (or {num_cores + 1} with the "
            f"boundary 1s) for {num_cores} cores, got {len(tt_rank)}: {tt_rank}."
        )
    return utils.cap_ranks([1] + list(internal) + [1], [m * n for m, n in zip(row_dims, col_dims)])


def tt_matmul_flops(row_dims, col_dims, ranks, right_to_left):
    """Multiply-add FLOPs per input row of ``x @ W`` for a TT-matrix ``W``.

    Left to right, core ``k`` costs ``2 N_{<k} n_k r_k r_{k-1} m_k M_{>k}``;
    right to left it costs ``2 M_{<k} m_k r_{k-1} r_k n_k N_{>k}``, where
    ``M_{<k} = m_1 ... m_{k-1}`` etc. (see ``contraction.py``).
    """
    total = 0
    for k in range(len(row_dims)):
        core = ranks[k] * row_dims[k] * col_dims[k] * ranks[k + 1]
        if right_to_left:
            total += 2 * math.prod(row_dims[:k]) * core * math.prod(col_dims[k + 1 :])
        else:
            total += 2 * math.prod(col_dims[:k]) * core * math.prod(row_dims[k + 1 :])
    return total


def tt_matrix_num_params(row_dims, col_dims, ranks):
    """Number of entries of the cores: ``sum_k r_{k-1} m_k n_k r_k``."""
    return sum(ranks[k] * row_dims[k] * col_dims[k] * ranks[k + 1] for k in range(len(row_dims)))


def tt_matmul_intermediate_size(row_dims, col_dims, ranks, right_to_left):
    """Elements of the tensors ``contraction.dense_tt_matmul`` creates, per input row.

    Each step makes one GEMM output and its transposed copy, both of
    ``M_{<k} r_{k-1} N_{>=k}`` elements right to left (``N_{<=k} r_k M_{>k}``
    left to right); one more transpose makes the ``N``-element output row
    (right to left) or the ``M``-element input column (left to right). In
    training they are kept for the backward pass.
    """
    total = 0
    for k in range(len(row_dims)):
        if right_to_left:
            total += 2 * math.prod(row_dims[:k]) * ranks[k] * math.prod(col_dims[k:])
        else:
            total += 2 * math.prod(col_dims[: k + 1]) * ranks[k + 1] * math.prod(row_dims[k + 1 :])
    return total + (math.prod(col_dims) if right_to_left else math.prod(row_dims))


def tt_full_flops(row_dims, col_dims, ranks):
    """Multiply-add FLOPs of forming the ``M x N`` matrix from its cores (`t3f_ext.full`).

    The cores are merged left to right; step ``k >= 2`` multiplies
    ``[P_{<k}, r_{k-1}]`` by ``[r_{k-1}, m_k n_k r_k]`` with
    ``P_{<k} = m_1 n_1 ... m_{k-1} n_{k-1}``: ``2 P_{<k} r_{k-1} m_k n_k r_k`` FLOPs.
    """
    total, prefix = 0, row_dims[0] * col_dims[0]
    for k in range(1, len(row_dims)):
        total += 2 * prefix * ranks[k] * row_dims[k] * col_dims[k] * ranks[k + 1]
        prefix *= row_dims[k] * col_dims[k]
    return total


def tt_full_intermediate_size(row_dims, col_dims, ranks):
    """Elements of the tensors `t3f_ext.full` creates: ``sum_{k>=2} P_{<=k} r_k``, plus the
    ``M N`` of the transpose from interleaved ``(i_1 j_1 ... i_d j_d)`` to ``[M, N]``."""
    total, prefix = 0, row_dims[0] * col_dims[0]
    for k in range(1, len(row_dims)):
        prefix *= row_dims[k] * col_dims[k]
        total += prefix * ranks[k + 1]
    return total + prefix


def forward_costs(row_dims, col_dims, ranks, right_to_left, batch_size):
    """FLOPs and intermediate elements of ``x @ W`` for ``batch_size`` rows, in both forms.

    * factorized: ``B F_tt`` FLOPs (``tt_matmul_flops``) and ``B S_tt`` elements
      (``tt_matmul_intermediate_size``);
    * reconstructed: form ``W`` (``tt_full_flops``, ``tt_full_intermediate_size``),
      then one GEMM: ``+ 2 B M N`` FLOPs and ``+ B N`` elements.

    Returns ``{"factorized": {"flops": .., "memory": ..}, "reconstructed": {...}}``
    (memory in elements).
    """
    in_dim, out_dim = math.prod(row_dims), math.prod(col_dims)
    return {
        "factorized": {
            "flops": batch_size * tt_matmul_flops(row_dims, col_dims, ranks, right_to_left),
            "memory": batch_size
            * tt_matmul_intermediate_size(row_dims, col_dims, ranks, right_to_left),
        },
        "reconstructed": {
            "flops": tt_full_flops(row_dims, col_dims, ranks) + 2 * batch_size * in_dim * out_dim,
            "memory": tt_full_intermediate_size(row_dims, col_dims, ranks) + batch_size * out_dim,
        },
    }


def reconstruct_threshold(row_dims, col_dims, ranks, right_to_left):
    """The smallest batch from which the reconstructed form is cheaper, or None (never).

    "Cheaper" means fewer FLOPs AND no more intermediate memory than the
    factorized form (see ``forward_costs``). Both costs are affine in the batch
    size ``B``, so each condition holds from one ``B`` on:
    ``B (F_tt - 2 M N) > F_full`` and ``B (S_tt - N) >= S_full``.
    """
    in_dim, out_dim = math.prod(row_dims), math.prod(col_dims)
    flops_slope = tt_matmul_flops(row_dims, col_dims, ranks, right_to_left) - 2 * in_dim * out_dim
    memory_slope = tt_matmul_intermediate_size(row_dims, col_dims, ranks, right_to_left) - out_dim
    if flops_slope <= 0 or memory_slope <= 0:
        return None
    by_flops = tt_full_flops(row_dims, col_dims, ranks) // flops_slope + 1
    by_memory = -(-tt_full_intermediate_size(row_dims, col_dims, ranks) // memory_slope)
    return max(by_flops, by_memory, 1)


def is_rank_budget(tt_rank):
    """Whether ``tt_rank`` is a (Python or NumPy) float: a fraction of the dense parameter count."""
    return isinstance(tt_rank, numbers.Real) and not isinstance(tt_rank, numbers.Integral)


def check_rank_budget(tt_rank):
    """Validates a float ``tt_rank`` (a fraction of the dense parameters); returns it as a float.

    Raises:
      ValueError: naming ``tt_rank`` if it is not in ``(0, 1]`` (NaN included).
    """
    budget = float(tt_rank)
    if not 0.0 < budget <= 1.0:
        raise ValueError(
            f"`tt_rank` as a float is a fraction of the dense layer's parameters and "
            f"must be in (0, 1], got {tt_rank!r}."
        )
    return budget


def rank_for_budget(budget, row_dims, col_dims, dense_size=None):
    """The largest uniform TT-rank whose (capped) cores fit ``budget * dense_size`` parameters.

    The parameter count ``sum_k r_{k-1} m_k n_k r_k`` of the capped ranks
    (``normalize_tt_ranks``) does not decrease with the rank, so a bisection
    over ``1 .. sqrt(M N)`` (no unfolding has a larger rank) finds it.

    Args:
      budget: the fraction, from ``check_rank_budget``.
      row_dims, col_dims: the ``d`` mode sizes ``m_k``, ``n_k``.
      dense_size: the dense weight count the fraction refers to; default
        ``M N`` (an embedding passes its unpadded ``V D``).

    Returns:
      ``(rank, ranks)``: the int rank and the ``d + 1`` capped ranks, or
      ``(None, None)`` when even rank 1 needs more parameters than the budget.
    """
    if dense_size is None:
        dense_size = math.prod(row_dims) * math.prod(col_dims)
    allowed = budget * dense_size

    def fits(rank):
        ranks = normalize_tt_ranks(rank, row_dims, col_dims)
        return tt_matrix_num_params(row_dims, col_dims, ranks) <= allowed

    if not fits(1):
        return None, None
    low, high = 1, math.isqrt(math.prod(row_dims) * math.prod(col_dims)) + 1
    while low < high:  # invariant: fits(low); the answer is < high + 1
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    # Past the largest useful rank the capped ranks stop changing: report that one.
    ranks = normalize_tt_ranks(low, row_dims, col_dims)
    return min(low, max(ranks)), ranks


def budget_error(tt_rank, dense_size, rank_one_params):
    """The ValueError for a budget below what TT-rank 1 needs."""
    return ValueError(
        f"`tt_rank`={tt_rank!r} allows {float(tt_rank) * dense_size:.0f} of the {dense_size} "
        f"dense parameters, but TT-rank 1 already needs {rank_one_params}; give a larger fraction."
    )


def ranks_for_budget_or_raise(tt_rank, row_dims, col_dims, dense_size=None):
    """``rank_for_budget(check_rank_budget(tt_rank), ...)[1]``, raising ``budget_error`` if none fit."""
    rank, ranks = rank_for_budget(check_rank_budget(tt_rank), row_dims, col_dims, dense_size)
    if rank is None:
        raise budget_error(
            tt_rank,
            dense_size or math.prod(row_dims) * math.prod(col_dims),
            tt_matrix_num_params(row_dims, col_dims, [1] * (len(row_dims) + 1)),
        )
    return ranks


def _orderings(factorization, dim, num_cores):
    """The given factorization as is, or each balanced one in ascending and descending order."""
    if factorization is not None:
        return [factorization]
    options = []
    for factors in balanced_factorizations(dim, num_cores):
        options += [factors, tuple(reversed(factors))]
    return options


def choose_tt_matrix_shape(
    in_dim, out_dim, tt_rank, num_cores=None, input_factorization=None, output_factorization=None
):
    """Resolves the TT shape of an ``in_dim x out_dim`` kernel and its contraction order.

    ``tt_rank`` is an int or list (see ``normalize_tt_ranks``) or a float
    budget in ``(0, 1]``: the cores then get the largest uniform rank whose
    parameters are at most that fraction of ``in_dim * out_dim``
    (``rank_for_budget``), the factorization among the candidates below that
    allows the largest such rank, and among those the fewest FLOPs.

    Given factorizations are kept in the given order (they define the kernel's
    layout). Missing ones are the most balanced ``num_cores``-factorizations;
    ties between equally balanced ones are broken by FLOPs, and the factors are
    ordered to minimise FLOPs: right to left, core ``k`` costs
    ``M_{<=k} N_{>=k} r_{k-1} r_k``, so ascending ``m`` and descending ``n`` are
    optimal (swapping two neighbours changes one term only).

    Returns:
      ``(row_dims, col_dims, ranks, right_to_left)``.
    """
    if input_factorization is not None:
        input_factorization = validate_factorization(
            input_factorization, in_dim, "input_factorization"
        )
    if output_factorization is not None:
        output_factorization = validate_factorization(
            output_factorization, out_dim, "output_factorization"
        )
    given = [f for f in (input_factorization, output_factorization) if f is not None]
    if num_cores is not None and (
        not hasattr(num_cores, "__index__") or isinstance(num_cores, bool) or int(num_cores) < 1
    ):
        raise ValueError(f"`num_cores` must be a positive int, got {num_cores!r}.")
    if given:
        lengths = {len(f) for f in given}
        if len(lengths) > 1 or (num_cores is not None and int(num_cores) not in lengths):
            raise ValueError(
                "`input_factorization` and `output_factorization` must have the same number of "
                f"factors as each other and as `num_cores`; got input_factorization="
                f"{input_factorization}, output_factorization={output_factorization}, "
                f"num_cores={num_cores}."
            )
        num_cores = lengths.pop()
    elif num_cores is None:
        num_cores = default_num_cores(in_dim, out_dim)
    num_cores = int(num_cores)

    row_options = _orderings(input_factorization, in_dim, num_cores)
    col_options = _orderings(output_factorization, out_dim, num_cores)
    budget = check_rank_budget(tt_rank) if is_rank_budget(tt_rank) else None
    best = None
    for rows in row_options:
        for cols in col_options:
            if budget is None:
                rank, ranks = 0, normalize_tt_ranks(tt_rank, rows, cols)
            else:
                rank, ranks = rank_for_budget(budget, rows, cols)
                if rank is None:
                    continue
            for right_to_left in (True, False):
                # A budget takes the largest rank it allows, then the fewest FLOPs.
                key = (-rank, tt_matmul_flops(rows, cols, ranks, right_to_left))
                if best is None or key < best[0]:
                    best = (key, rows, cols, ranks, right_to_left)
    if best is None:
        raise budget_error(
            tt_rank,
            in_dim * out_dim,
            min(
                tt_matrix_num_params(rows, cols, [1] * (num_cores + 1))
                for rows in row_options
                for cols in col_options
            ),
        )
    _, rows, cols, ranks, right_to_left = best
    return tuple(rows), tuple(cols), ranks, right_to_left
