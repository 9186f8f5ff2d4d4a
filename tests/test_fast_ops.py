"""The CPU fast paths give the numbers of the plain ops: fused conv + ReLU, the bit-mask dropout,
and the allocator setting that keeps freed memory."""

import copy
import subprocess
import sys

import pytest
import torch

import nin.fast as fast
from nin.fast import BitMaskDropout as Dropout, FusedMLPConv, half_dropout_mask, optimize
from nin.models.blocks import MLPConv
from nin.models.registry import build_model


def _grads(model, x, amp: bool):
    model.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    out.float().square().sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


def _fused_and_plain(images: int, amp: bool):
    """nin-cifar10's outputs and gradients for `images` random images: optimized by nin.fast, and the plain
    torch.nn model of nin.models with the same weights."""
    torch.manual_seed(0)
    plain = build_model("nin-cifar10").to(memory_format=torch.channels_last).eval()
    optimized = optimize(copy.deepcopy(plain))
    assert type(optimized.blocks[0]) is FusedMLPConv and type(plain.blocks[0]) is MLPConv
    assert list(optimized.state_dict()) == list(plain.state_dict())   # the same parameters under the same names
    x = torch.randn(images, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    return _grads(optimized, x, amp), _grads(plain, x, amp)


@pytest.mark.parametrize("amp", [False, True])
def test_the_optimized_model_gives_the_plain_models_numbers(amp):
    # 16 images: from there on PyTorch runs its own convolutions in oneDNN too, on any number of threads.
    # Fewer on one thread (or one image on any), its 1x1 convolutions use another matrix product (test below).
    fused, plain = _fused_and_plain(16, amp)
    assert torch.equal(fused[0], plain[0])
    assert torch.equal(fused[1], plain[1])
    assert all(torch.equal(a, b) for a, b in zip(fused[2], plain[2]))


def test_fused_conv_relu_on_one_image_and_one_thread_differs_by_rounding_only():
    """One image on one thread: PyTorch's unfused 1x1 convolutions leave oneDNN, the fused ones do not, so
    the sums are added in another order (seen: 7e-9 apart in the class scores), nothing more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fused, plain = _fused_and_plain(1, False)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip((fused[0], fused[1], *fused[2]), (plain[0], plain[1], *plain[2])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_path_is_taken_on_the_cpu_and_not_under_hooks():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(1, 3, 8, 8)
    assert fast._can_fuse(conv, x) == torch.backends.mkldnn.is_available()
    handle = conv.register_forward_hook(lambda *_: None)
    assert not fast._can_fuse(conv, x)
    handle.remove()


def test_half_dropout_mask_is_zero_or_two_with_probability_one_half():
    torch.manual_seed(0)
    like = torch.empty(64, 96, 16, 16).contiguous(memory_format=torch.channels_last)
    mask = half_dropout_mask(like)
    assert mask.shape == like.shape and mask.is_contiguous(memory_format=torch.channels_last)
    assert set(mask.unique().tolist()) == {0, 2}
    kept = (mask == 2).double()
    assert abs(kept.mean().item() - 0.5) < 0.002           # 1.6 M draws: sd 0.0004
    # neighbours along the channel axis (same byte of random bits) are independent
    pairs = torch.stack([kept[:, :-1].flatten(), kept[:, 1:].flatten()])
    assert abs(torch.corrcoef(pairs)[0, 1].item()) < 0.01


def test_dropout_trains_like_inverted_dropout_and_is_identity_in_eval():
    x = torch.randn(8, 16, 5, 7, requires_grad=True)
    drop = Dropout(0.5).train()
    torch.manual_seed(1)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], 2 * x[kept])
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() * 2)
    assert torch.equal(drop.eval()(x), x)
    torch.manual_seed(1)
    assert torch.equal(Dropout(0.5).train()(x), y)        # seeded: reproducible


def test_a_quarter_dropout_uses_a_bit_mask_with_the_same_statistics():
    from nin.fast import dyadic_dropout_mask

    torch.manual_seed(3)
    like = torch.empty(64, 96, 16, 16).contiguous(memory_format=torch.channels_last)
    keep = dyadic_dropout_mask(like, 0.25)
    assert keep.dtype == torch.bool and keep.is_contiguous(memory_format=torch.channels_last)
    assert abs(keep.double().mean().item() - 0.75) < 0.002            # 1.6 M draws: sd 0.0003
    pairs = torch.stack([keep[:, :-1].flatten().double(), keep[:, 1:].flatten().double()])
    assert abs(torch.corrcoef(pairs)[0, 1].item()) < 0.01
    x = torch.ones(20000, requires_grad=True)
    y = Dropout(0.25).train()(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.015
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 4 / 3))   # inverted dropout: mean kept
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * (4 / 3))
    assert abs(dyadic_dropout_mask(like, 3 / 256).double().mean().item() - 253 / 256) < 0.001   # 8-bit fields
    with pytest.raises(ValueError, match="multiple of 1/256"):
        dyadic_dropout_mask(like, 0.3)


def test_other_dropout_rates_use_torch_dropout():
    torch.manual_seed(2)
    x = torch.ones(10000)
    y = Dropout(0.3).train()(x)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.02
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))


# A training step's pattern: buffers of tens of MB allocated and freed in changing order.
STEPS = """
import resource, sys, torch
from nin.train.allocator import freed_memory_kept, keep_freed_memory
def faults_of_one_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(50_000_000, dtype=torch.uint8)
    b = torch.ones(30_000_000, dtype=torch.uint8)
    del a
    c = torch.ones(40_000_000, dtype=torch.uint8)
    del b, c
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
def median_of_late_steps():
    return sorted([faults_of_one_step() for _ in range(10)][-5:])[2]   # the median of the last five steps
if sys.argv[1] in ("on", "on-then-scoped"):
    assert keep_freed_memory()
if sys.argv[1] == "scoped":
    with freed_memory_kept() as kept:
        assert kept
        print(median_of_late_steps())
if sys.argv[1].endswith("scoped"):
    with freed_memory_kept():   # another hot loop; what follows runs after it
        faults_of_one_step()
print(median_of_late_steps())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_keeping_freed_memory_stops_page_faults_once_warm():
    def late_faults(setting):
        out = subprocess.run([sys.executable, "-c", STEPS, setting], capture_output=True, text=True, check=True)
        counts = [int(line) for line in out.stdout.split()]
        return counts[0] if len(counts) == 1 else counts
    # The median of the last five steps: under glibc's default a warm process faults in most steps for all
    # three buffers (in a few, its dynamic mmap threshold reuses one or two: seen 2 runs in 8 on a last step),
    # while a kept heap faults in almost none (one late 40 MB fault has been seen).
    pages_of_a_step = 120_000_000 // 4096
    assert late_faults("off") > pages_of_a_step // 2   # glibc's default: unmapped on free, faulted in again
    assert late_faults("on") < pages_of_a_step // 20   # kept: reused without faults
    # Kept only for the loops of `freed_memory_kept` (evaluations): reused inside, handed back after
    # (at least the 50 MB buffer: glibc's own mmap threshold, which may have grown to 32 MB, is kept)...
    inside, after = late_faults("scoped")
    assert inside < pages_of_a_step // 20 and after > pages_of_a_step // 4
    # ... unless the process keeps freed memory for good (nin train), which the scope leaves as it was.
    assert late_faults("on-then-scoped") < pages_of_a_step // 20
