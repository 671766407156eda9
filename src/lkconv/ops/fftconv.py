"""Long and global convolutions computed with real FFTs.

Three operators, all differentiable through ``torch.fft``:

* :func:`fft_conv1d` -- depthwise 1-D *convolution* of a sequence with a kernel as long as the sequence (SGConv,
  long convolutions, S4-style layers). Causal by default, or centred.
* :func:`fft_conv1d_bidirectional` -- the sum of a causal and an anti-causal long convolution done with one FFT.
* :func:`fft_conv2d` -- a depthwise 2-D *cross-correlation* that returns exactly what
  ``F.conv2d(x, k, padding=padding, groups=C)`` returns, for global / very large kernels.

All transforms are zero padded to a "fast" length of at least ``L + Lk - 1`` so the result is the linear, not the
circular, convolution. Half precision inputs are computed in float32 (the CPU FFT has no fp16/bf16 kernels) and
cast back.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["next_fast_len", "fft_conv1d", "fft_conv1d_bidirectional", "fft_conv2d"]


@functools.lru_cache(maxsize=1024)
def next_fast_len(n: int) -> int:
    """Smallest integer ``>= n`` whose only prime factors are 2, 3 and 5 (a size FFT libraries handle fastest).

    Args:
        n: Minimal transform length, ``n >= 1``.

    Returns:
        The fast transform length.

    Raises:
        ValueError: If ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"next_fast_len expects n >= 1, got {n}")
    best = 1 << (n - 1).bit_length()  # the next power of two is always a candidate
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # Smallest power of two times p35 that reaches n.
            quotient = -(-n // p35)
            candidate = p35 * (1 << (quotient - 1).bit_length())
            best = min(best, candidate)
            p35 *= 3
        p5 *= 5
    return best


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype the FFT runs in: float64 stays, anything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_seq(u: torch.Tensor, k: torch.Tensor, name: str = "k") -> None:
    if u.dim() < 2:
        raise ValueError(f"u must have shape (..., H, L), got {tuple(u.shape)}")
    if k.dim() < 2 or k.shape[-2] != u.shape[-2]:
        raise ValueError(f"{name} must have shape (..., H, Lk) with H={u.shape[-2]}, got {tuple(k.shape)}")
    if k.shape[-1] < 1 or u.shape[-1] < 1:
        raise ValueError("sequence and kernel lengths must be >= 1")


def _add_skip(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    if D is None:
        return y
    if D.dim() != 1 or D.shape[0] != u.shape[-2]:
        raise ValueError(f"D must have shape (H,) with H={u.shape[-2]}, got {tuple(D.shape)}")
    return y + D.unsqueeze(-1) * u


def fft_conv1d(
    u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None, causal: bool = True
) -> torch.Tensor:
    """Depthwise long 1-D convolution via FFT (true convolution, not cross-correlation).

    With ``causal=True``: ``y[..., h, t] = sum_{s=0}^{Lk-1} k[h, s] * u[..., h, t - s]`` (zero for ``t - s < 0``),
    i.e. ``irfft(rfft(u, n) * rfft(k, n))[..., :L]`` with ``n >= L + Lk - 1``. With ``causal=False`` the kernel is
    centred: ``y[..., h, t] = sum_s k[h, s] * u[..., h, t - s + c]`` with ``c = (Lk - 1) // 2``.

    Args:
        u: Input of shape ``(..., H, L)`` (typically ``(B, H, L)``).
        k: Kernel of shape ``(H, Lk)`` or any shape broadcastable against ``u`` ending in ``(H, Lk)``.
        D: Optional skip weights of shape ``(H,)``; adds ``D[h] * u[..., h, t]``.
        causal: Causal (default) or centred kernel.

    Returns:
        Tensor of shape ``(..., H, L)`` with the dtype of ``u``.
    """
    _check_seq(u, k)
    L, Lk = u.shape[-1], k.shape[-1]
    shift = 0 if causal else (Lk - 1) // 2
    if causal and Lk > L:
        k = k[..., :L]  # taps beyond L - 1 never reach an output sample
        Lk = L
    n = next_fast_len(L + Lk - 1)
    cdt = _compute_dtype(u.dtype)
    u_f = torch.fft.rfft(u.to(cdt), n=n)
    k_f = torch.fft.rfft(k.to(cdt), n=n)
    y = torch.fft.irfft(u_f * k_f, n=n)[..., shift : shift + L].to(u.dtype)
    return _add_skip(y, u, D)


def fft_conv1d_bidirectional(
    u: torch.Tensor, k_fwd: torch.Tensor, k_bwd: torch.Tensor, D: torch.Tensor | None = None
) -> torch.Tensor:
    """Causal plus anti-causal long convolution, computed with a single FFT product.

    ``y = fft_conv1d(u, k_fwd) + flip(fft_conv1d(flip(u), k_bwd))``, i.e.
    ``y[t] = sum_s k_fwd[s] u[t - s] + sum_s k_bwd[s] u[t + s]`` (both include lag 0).

    Args:
        u: Input of shape ``(..., H, L)``.
        k_fwd: Causal kernel ``(H, Lf)`` (broadcastable like in :func:`fft_conv1d`).
        k_bwd: Anti-causal kernel ``(H, Lb)``.
        D: Optional skip weights of shape ``(H,)``.

    Returns:
        Tensor of shape ``(..., H, L)``.
    """
    _check_seq(u, k_fwd, "k_fwd")
    _check_seq(u, k_bwd, "k_bwd")
    L = u.shape[-1]
    k_fwd, k_bwd = k_fwd[..., :L], k_bwd[..., :L]
    lf, lb = k_fwd.shape[-1], k_bwd.shape[-1]
    n = next_fast_len(max(L + lf - 1, L + lb - 1, lf + lb - 1))
    cdt = _compute_dtype(u.dtype)
    # Circular layout: causal taps at 0..lf-1, anti-causal taps s >= 1 at n - s, anti-causal lag 0 folded into 0.
    kf = F.pad(k_fwd.to(cdt), (0, n - lf))
    kb = k_bwd.to(cdt)
    kb_tail = F.pad(kb[..., 1:].flip(-1), (n - lb + 1, 0))
    kb_head = F.pad(kb[..., :1], (0, n - 1))
    kernel = kf + kb_tail + kb_head
    y = torch.fft.irfft(torch.fft.rfft(u.to(cdt), n=n) * torch.fft.rfft(kernel, n=n), n=n)[..., :L].to(u.dtype)
    return _add_skip(y, u, D)


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def _resolve_padding(padding: str | int | tuple[int, int], kh: int, kw: int) -> tuple[int, int, int, int]:
    """Returns (top, bottom, left, right) padding with F.conv2d's conventions."""
    if isinstance(padding, str):
        if padding == "same":
            # PyTorch puts the odd extra pixel of an even kernel at the bottom / right.
            return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2
        if padding == "valid":
            return 0, 0, 0, 0
        raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return ph, ph, pw, pw


def _corr_axis(size: int, k: int, lo: int, hi: int) -> tuple[int, int]:
    """FFT length and output length along one axis of a cross-correlation with padding (lo, hi)."""
    out = size + lo + hi - k + 1
    if out < 1:
        raise ValueError(f"kernel ({k}) larger than padded input ({size + lo + hi})")
    # Needed lags m in [-lo, out - 1 - lo]; non-zero lags in [-(k - 1), size - 1]; the union must not alias.
    span = max(out - 1 - lo, size - 1) - min(-lo, -(k - 1)) + 1
    return next_fast_len(span), out


def fft_conv2d(
    x: torch.Tensor,
    k: torch.Tensor,
    padding: str | int | tuple[int, int] = "same",
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depthwise 2-D cross-correlation via FFT, equal to ``F.conv2d(x, k, bias, padding=padding, groups=C)``.

    Cost is ``O(C H W log(HW))`` whatever the kernel size, so it wins for global or very large kernels.
    Stride and dilation are 1.

    Args:
        x: Input ``(B, C, H, W)``.
        k: Depthwise kernel ``(C, 1, kh, kw)`` (the ``nn.Conv2d`` layout) or ``(C, kh, kw)``.
        padding: ``'same'``, ``'valid'``, an int or ``(ph, pw)``; zero padding as in ``F.conv2d``.
        bias: Optional ``(C,)`` bias.

    Returns:
        Tensor ``(B, C, H_out, W_out)`` with ``H_out = H + pad_top + pad_bottom - kh + 1`` (same for W).
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if k.dim() == 4:
        if k.shape[1] != 1:
            raise ValueError(f"depthwise kernel must have shape (C, 1, kh, kw), got {tuple(k.shape)}")
        k = k[:, 0]
    if k.dim() != 3 or k.shape[0] != x.shape[1]:
        raise ValueError(
            f"kernel must have shape (C, 1, kh, kw) or (C, kh, kw) with C={x.shape[1]}, got {tuple(k.shape)}"
        )
    H, W = x.shape[-2:]
    kh, kw = k.shape[-2:]
    top, bottom, left, right = _resolve_padding(padding, kh, kw)
    nh, h_out = _corr_axis(H, kh, top, bottom)
    nw, w_out = _corr_axis(W, kw, left, right)
    cdt = _compute_dtype(x.dtype)
    x_f = torch.fft.rfft2(x.to(cdt), s=(nh, nw))
    k_f = torch.fft.rfft2(k.to(cdt), s=(nh, nw))
    # Circular cross-correlation c[m] = sum_a k[a] x[m + a]; output row i is lag i - top.
    c = torch.fft.irfft2(x_f * k_f.conj(), s=(nh, nw))
    y = torch.roll(c, shifts=(top, left), dims=(-2, -1))[..., :h_out, :w_out].to(x.dtype)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y
