"""Self-check helpers for the notebooks' exercises.

Each ``check_*`` function raises ``AssertionError`` with a friendly hint when the learner's answer is
wrong, and prints a short confirmation when it is right, so a check cell reads as one line.

A check leaves the learner's session as it found it: torch's global random state is neither
reseeded nor advanced (the checks that draw weights or inputs run on a private copy of it, see
``_keeps_global_rng``), and a learner's model or layer is handed back in the train/eval mode it had.

:func:`prove_equal` is the proof the notebooks run after building a block inline: the inline version
and the package's compute bit-identical outputs with the same weights.

:func:`claim` binds a sentence of a notebook's text to the numbers of the run beside it: the
sentence's condition is checked on this run's results, and a re-run where it no longer holds
stops with a message that says which sentence and what changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "check_average_softmax_function",
    "check_batch_bytes",
    "check_bn_fold",
    "check_channel_cover_function",
    "check_bottleneck_params_function",
    "check_conv_cost_function",
    "check_depth_function",
    "check_extra_block_cost_function",
    "check_fpn_level_function",
    "check_group_norm_function",
    "check_median_time_function",
    "check_output_size_function",
    "check_param_groups_function",
    "check_preact_block",
    "check_receptive_field_function",
    "check_res2net_params_function",
    "check_scaled_run_function",
    "check_shortcut_function",
    "check_small_resnet",
    "check_smooth_losses_function",
    "check_stage_memory_function",
    "check_stage_shapes",
    "check_test_size_function",
    "check_uniform_stack_function",
    "check_v1_saving",
    "check_warmup_factor_function",
    "check_winning_channel_function",
    "check_zero_init_function",
    "check_zero_init_gradients",
    "CLAIMS_ENV",
    "claim",
    "prove_equal",
]

_Check = TypeVar("_Check", bound=Callable[..., Any])

#: Environment variable: ``warn`` makes a failed :func:`claim` print a warning instead of stopping.
CLAIMS_ENV = "TUTORIAL_CLAIMS"


def claim(holds: Any, message: str) -> None:
    """Check that a sentence of the notebook's text holds for this run's numbers.

    The text of a notebook describes the run stored with it, made with the default parameters.
    Each result the text states ("the network learned the in-range digits", "multi-scale testing
    lifts the worst split by more than 20 points") is checked by a ``claim`` in the cell that
    computes it. When a re-run contradicts the text (other parameters, another machine), the
    notebook stops there, and the message says which statement failed and with what numbers.

    An experimenter who changed the parameters on purpose, and the test that re-runs every notebook
    at small parameters for re-run safety, set ``TUTORIAL_CLAIMS=warn``: a failed claim then prints
    a warning line and the notebook goes on.

    Args:
        holds: the condition the text states (anything with a truth value, e.g. a NumPy bool).
        message: what the text says, and the numbers of this run, e.g.
            ``f"multi-scale testing lifts the worst split by > 0.2; here {gain:.3f}"``.

    Raises:
        AssertionError: if ``holds`` is false and ``TUTORIAL_CLAIMS`` is not ``warn``.
    """
    import os

    if not isinstance(message, str) or not message:
        raise TypeError("message must be a non-empty str saying what the text claims, with this run's numbers")
    if bool(holds):
        return
    if os.environ.get(CLAIMS_ENV, "").strip().lower() == "warn":
        print(f"Warning: the text does not hold for this run: {message}")
        return
    raise AssertionError(
        f"The text next to this cell does not hold for this run: {message}. It describes the default parameters; "
        f"if you changed them on purpose, set the environment variable {CLAIMS_ENV}=warn to see such "
        "differences as warnings and go on")


def _keeps_global_rng(check: _Check) -> _Check:
    """Run ``check`` on a private copy of torch's CPU random state, seeded with 0.

    The weights and inputs a check draws are then the same on every run, whatever the learner did
    before, and the learner's own random state is exactly what it was before the call: not
    reseeded, and not advanced by the modules the check builds.
    """

    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.random.fork_rng(devices=[]):  # saves and restores the CPU generator only
            torch.default_generator.manual_seed(0)
            return check(*args, **kwargs)

    return cast(_Check, wrapper)


def _ok(message: str) -> None:
    """Print the confirmation line every passing check ends with."""
    print(f"Correct: {message}")


def _restore_modes(modes: dict[nn.Module, bool]) -> None:
    """Put every module back in the train/eval mode recorded in ``modes``."""
    for module, training in modes.items():
        module.training = training


# --- 00 setup ---------------------------------------------------------------------------------


def check_batch_bytes(answer_mib: float, *, batch: int, channels: int, size: int, bytes_per_value: int) -> None:
    """Check a batch-memory estimate in MiB (2**20 bytes), to within rounding."""
    import math

    expected = batch * channels * size * size * bytes_per_value / 2**20
    if isinstance(answer_mib, bool) or not isinstance(answer_mib, (int, float)):
        raise AssertionError(f"store a number in MiB, got {type(answer_mib).__name__}")
    if not math.isfinite(answer_mib):
        raise AssertionError(f"store a finite number in MiB, got {answer_mib}")
    if abs(answer_mib - expected * 2**20 / 1e6) < 1e-6 * expected:
        raise AssertionError("that is megabytes (1e6 bytes); divide by 2**20 for mebibytes")
    if abs(answer_mib - expected / 4) < 1e-9 * expected and bytes_per_value == 4:
        raise AssertionError("each float32 value takes 4 bytes: multiply by 4")
    if abs(answer_mib - expected) > 1e-6 * expected:
        raise AssertionError("not quite: count values (batch x channels x height x width), x bytes each, / 2**20")
    _ok(f"{expected:.2f} MiB")


def check_median_time_function(fn: Callable[[Callable[[], Any], int], float]) -> None:
    """Check ``fn(work, repeats) -> seconds``: one untimed warm-up call, then the median of ``repeats`` timings.

    ``work`` here sleeps 40 ms on its first call (like a first call that allocates or compiles), then
    14, 2, 60, 7 and 3 ms (60 ms like another program taking the core). The median (7 ms) differs from
    the mean, the fastest call, the first and the last timed call, so each of those wrong answers is
    caught; a timing that includes the warm-up is caught too.
    """
    import time

    repeats = 5
    durations = [0.040, 0.014, 0.002, 0.060, 0.007, 0.003]   # warm-up, then `repeats` calls
    actual: list[float] = []   # what each call really took: a busy machine stretches every sleep

    def work() -> None:
        start = time.perf_counter()
        time.sleep(durations[min(len(actual), len(durations) - 1)])
        actual.append(time.perf_counter() - start)

    got = _call(fn, work, repeats)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise AssertionError(f"return the median time in seconds, as a float; got {type(got).__name__}")
    if len(actual) != repeats + 1:
        raise AssertionError(f"work was called {len(actual)} times for repeats={repeats}: call it once untimed "
                             f"(the warm-up), then time it {repeats} times")
    timed = sorted(actual[1:])
    median, mean = timed[len(timed) // 2], sum(timed) / len(timed)
    if got < 0.5 * timed[0]:
        raise AssertionError(f"{got * 1e3:.2f} ms is faster than the 2 ms each call sleeps: time around the call "
                             "with time.perf_counter(), in seconds")
    if got >= 0.030 and median < 0.030:
        raise AssertionError(f"{got * 1e3:.1f} ms: that includes a slow call (the warm-up, or the 60 ms one); "
                             "time each call on its own and take the middle value of the sorted timings")
    # An answer within 1 ms of one timed call is that call (the sleeps lie at least 1 ms apart, and
    # timing around a call adds microseconds): name the wrong one the learner returned.
    nearest = min(range(1, len(actual)), key=lambda i: abs(actual[i] - got))
    if abs(actual[nearest] - got) < 0.001 and actual[nearest] != median:
        if actual[nearest] == timed[0]:
            picked = "the fastest call (the minimum)"
        elif nearest == 1:
            picked = "the first timed call"
        elif nearest == len(actual) - 1:
            picked = "the last timed call"
        else:
            picked = "one of the timed calls, not the middle one"
        raise AssertionError(f"{got * 1e3:.1f} ms looks like {picked}; the median of the {repeats} timed calls was "
                             f"{median * 1e3:.1f} ms: sort the timings and take the middle one")
    if abs(got - mean) < abs(got - median):
        raise AssertionError(f"{got * 1e3:.1f} ms: that looks like a mean, which one 60 ms outlier pulls up; "
                             "return the median (the middle of the sorted timings)")
    if abs(got - median) > 0.5 * median:
        raise AssertionError(f"{got * 1e3:.1f} ms, but the median of the {repeats} timed calls was {median * 1e3:.1f} ms: "
                             "sort the timings and take the middle one")
    _ok(f"median {got * 1e3:.1f} ms per call; the 40 ms warm-up and the 60 ms outlier did not move it, and it is "
        "neither the fastest, the first nor the last call")


# --- 01 convolution and pooling, 03 bottleneck blocks, 04 building ResNet-101 -----------------


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a learner's function, turning a crash into a hint that names the call."""
    if not callable(fn):
        raise AssertionError(f"pass your function itself (no parentheses), got {type(fn).__name__}")
    try:
        return fn(*args)
    except NotImplementedError:
        # The unanswered stub of a student copy (nbgrader's `raise NotImplementedError()`): say what to do,
        # not what crashed. `from None` keeps the learner's screen to this one hint.
        name = getattr(fn, "__name__", "your function")
        raise AssertionError(
            f"{name} is not written yet: it still raises NotImplementedError. Replace `# YOUR CODE HERE` and "
            "`raise NotImplementedError()` in the exercise cell above with your code, run that cell, then this check "
            "again") from None
    except Exception as error:  # the learner's code: report what call failed, and why
        raise AssertionError(f"your function raised {type(error).__name__}: {error} for arguments {args}") from error


def _pair(got: Any, what: str) -> tuple[Any, Any]:
    """``got`` as a 2-tuple, or an ``AssertionError`` that says a pair ``what`` is expected."""
    try:
        first, second = got
    except (TypeError, ValueError):
        raise AssertionError(f"return a pair {what}, got {got!r}") from None
    return first, second


@_keeps_global_rng
def check_output_size_function(fn: Callable[[int, int, int, int, int], int]) -> None:
    """Check ``fn(size, kernel_size, stride, padding, dilation) -> int`` against real ``nn.Conv2d`` layers."""
    import itertools

    import torch
    from torch import nn

    cases = 0
    for size, k, s, p, d in itertools.product((7, 12, 32), (1, 3, 4, 7), (1, 2, 3), (0, 1, 3), (1, 2)):
        if d * (k - 1) + 1 > size + 2 * p:
            continue
        expected = nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, size, size)).shape[-1]
        got = _call(fn, size, k, s, p, d)
        if got != expected:
            hint = "use floor division (//), not /" if isinstance(got, float) else (
                "a dilated kernel spans d*(k-1)+1 pixels" if d > 1 else "count the +1 for the first position")
            raise AssertionError(
                f"size={size}, kernel_size={k}, stride={s}, padding={p}, dilation={d}: nn.Conv2d gives "
                f"{expected}, your function gives {got}; {hint}")
        cases += 1
    _ok(f"your formula matches nn.Conv2d on {cases} settings")


@_keeps_global_rng
def check_receptive_field_function(fn: Callable[[list[tuple[int, int]]], tuple[int, int]]) -> None:
    """Check ``fn([(kernel, stride), ...]) -> (receptive_field, jump)`` against :func:`tutorial_lib.layers.receptive_field`."""
    from torch import nn

    from tutorial_lib.layers import receptive_field

    stacks = [[(3, 1)], [(3, 1), (3, 1)], [(7, 2), (3, 2)], [(7, 2), (3, 2), (3, 1), (3, 2), (1, 1)],
              [(5, 1), (2, 2), (5, 1), (2, 2)], [(1, 2), (3, 1)]]
    for stack in stacks:
        last = receptive_field([nn.Conv2d(1, 1, k, s) for k, s in stack])[-1]
        got = _pair(_call(fn, list(stack)), "(receptive_field, jump)")
        if got != (last.size, last.jump):
            raise AssertionError(
                f"for layers {stack} expected (receptive field, jump) = {(last.size, last.jump)}, got {got}; "
                "each layer adds (k - 1) * jump_so_far, then multiplies jump by its stride")
    _ok(f"your recurrence matches tutorial_lib.layers.receptive_field on {len(stacks)} stacks")


def check_uniform_stack_function(fn: Callable[[int], nn.Module], depths: Sequence[int] = (16, 64, 256),
                                 predicted: dict[int, int] | None = None) -> dict[int, int]:
    """Check ``fn(depth)``: ``depth`` 3x3 convolutions, 1 channel, padding 1, all weights 1/9, no bias or activation.

    That is the simplest network of Luo et al. 2016 (section 2.2: uniform weights, no non-linearity).
    On a pass, measures the effective receptive field (side of the centred square holding half the
    gradient, :func:`tutorial_lib.layers.effective_receptive_field`) of each depth and prints it beside
    the theoretical field (``2 * depth + 1``) and the learner's ``predicted`` sides, if given.

    Returns:
        The measured effective side for each depth.
    """
    import torch
    from torch import nn

    from tutorial_lib.layers import effective_receptive_field

    sides = {}
    for depth in depths:
        stack = _call(fn, depth)
        if not isinstance(stack, nn.Module):
            raise AssertionError(f"return an nn.Module (e.g. nn.Sequential of the layers), got {type(stack).__name__}")
        convs = [m for m in stack.modules() if isinstance(m, nn.Conv2d)]
        if len(convs) != depth:
            raise AssertionError(f"uniform_stack({depth}) holds {len(convs)} Conv2d layers; it needs {depth}")
        if any(not isinstance(m, (nn.Conv2d, nn.Sequential, nn.Identity)) for m in stack.modules()):
            raise AssertionError("only convolutions: Luo et al.'s simplest case has no activation or normalization")
        x = torch.rand(1, 1, 21, 21)
        with torch.no_grad():
            out = stack(x)
        if out.shape != x.shape:
            raise AssertionError(f"the output is {tuple(out.shape[-2:])} for a {tuple(x.shape[-2:])} input: use "
                                 "kernel_size=3, padding=1 so the map keeps its size")
        if any(c.bias is not None and bool(c.bias.detach().abs().max() > 0) for c in convs):
            raise AssertionError("use bias=False: a bias adds the same to every pixel and hides nothing, but it is not Luo's case")
        if any(not torch.allclose(c.weight.detach(), torch.full_like(c.weight, 1 / 9)) for c in convs):
            raise AssertionError("set every weight to 1/9 (torch.nn.init.constant_ or weight.fill_ under torch.no_grad()), "
                                 "so each layer averages its 3x3 window")
        # The gradient is a binomial bump of standard deviation sqrt(2 * depth / 3) px: an input of
        # +-5 standard deviations holds all but a negligible share of it, however large the theoretical field.
        side = min(2 * depth + 9, 2 * int(5 * (2 * depth / 3) ** 0.5) + 9)
        sides[depth] = effective_receptive_field(stack, side, in_channels=1, mass=0.5, trials=1).side
    for depth in depths:
        guess = f", you predicted {predicted[depth]} px" if predicted and depth in predicted else ""
        print(f"  depth {depth:>3}: theoretical {2 * depth + 1:>4} px, effective (half the gradient) {sides[depth]:>3} px{guess}")
    first, last = depths[0], depths[-1]
    _ok(f"{last // first}x the depth gave {2 * last + 1}/{2 * first + 1} = {(2 * last + 1) / (2 * first + 1):.1f}x the "
        f"theoretical field but {sides[last] / sides[first]:.1f}x the effective one (Luo et al.: about sqrt({last // first}) "
        f"= {(last / first) ** 0.5:.1f}x)")
    return sides


@_keeps_global_rng
def check_conv_cost_function(fn: Callable[[int, int, int, int, bool], tuple[int, int]]) -> None:
    """Check ``fn(c_in, c_out, kernel_size, out_size, bias) -> (params, macs)`` against real layers."""
    import torch
    from torch import nn

    from tutorial_lib.cost import count_flops, count_parameters

    for c_in, c_out, k, stride, size, bias in [(3, 64, 7, 2, 224, False), (64, 64, 3, 1, 56, False),
                                               (256, 64, 1, 1, 56, True), (16, 8, 5, 2, 31, True)]:
        conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=bias)
        out_size = conv(torch.zeros(1, c_in, size, size)).shape[-1]
        expected = (count_parameters(conv), count_flops(conv, (c_in, size, size))["macs"])
        got = _pair(_call(fn, c_in, c_out, k, out_size, bias), "(params, macs)")
        if got != expected:
            params, macs = got
            hints = []
            if params == expected[0] + (c_out if not bias else -c_out):
                hints.append("the bias adds c_out parameters only when bias=True")
            if macs == 2 * expected[1]:
                hints.append("that is FLOPs; one MAC is a multiply *and* an add")
            raise AssertionError(
                f"Conv2d({c_in}, {c_out}, {k}, bias={bias}) with a {out_size}x{out_size} output: expected "
                f"(params, MACs) = {expected}, got {got}. " + (" ".join(hints) or
                "params = c_out*c_in*k*k (+c_out), MACs = c_out*c_in*k*k per output pixel"))
    _ok("parameters and MACs match count_parameters and count_flops")


@_keeps_global_rng
def check_bottleneck_params_function(fn: Callable[[int, int, int], int]) -> None:
    """Check ``fn(inplanes, planes, stride) -> parameters`` of a Bottleneck (with its projection if needed)."""
    from tutorial_lib.blocks import Bottleneck, projection
    from tutorial_lib.cost import count_parameters

    for inplanes, planes, stride in [(256, 64, 1), (64, 64, 1), (256, 128, 2), (1024, 512, 2), (32, 8, 1)]:
        out = planes * Bottleneck.expansion
        shortcut = projection(inplanes, out, stride) if stride != 1 or inplanes != out else None
        expected = count_parameters(Bottleneck(inplanes, planes, stride, shortcut))
        got = _call(fn, inplanes, planes, stride)
        if got != expected:
            hint = "count BatchNorm too (a weight and a bias per channel)"
            if shortcut is not None and got == expected - inplanes * out - 2 * out:
                hint = "this block needs a projection shortcut: a 1x1 conv and its BatchNorm"
            raise AssertionError(f"Bottleneck({inplanes}, {planes}, stride={stride}): expected {expected:,}, got {got!r}; {hint}")
    _ok("your count matches tutorial_lib.blocks.Bottleneck on 5 configurations")


@_keeps_global_rng
def check_v1_saving(answer: int, *, inplanes: int, planes: int, size: int) -> None:
    """Check the MACs that v1 saves over v1.5 in a stride-2 Bottleneck with a ``size`` x ``size`` input."""
    from tutorial_lib.blocks import Bottleneck, projection
    from tutorial_lib.cost import count_flops

    out = planes * Bottleneck.expansion
    macs = {
        layout: count_flops(Bottleneck(inplanes, planes, 2, projection(inplanes, out, 2), stride_in=layout),
                            (inplanes, size, size))["macs"]
        for layout in ("v1", "v1.5")
    }
    expected = macs["v1.5"] - macs["v1"]
    if answer != expected:
        raise AssertionError(
            f"{answer!r} is not the saving; only conv1 changes: in v1.5 it produces all "
            f"{size}x{size} pixels, in v1 only the {(size + 1) // 2}x{(size + 1) // 2} it keeps")
    _ok(f"v1 saves {expected:,} MACs ({expected / macs['v1.5']:.1%} of this block)")


def check_depth_function(fn: Callable[[tuple[int, ...], int], int]) -> None:
    """Check ``fn(blocks_per_stage, convs_per_block) -> depth`` on the five ResNets of He et al. 2016, Table 1."""
    table = {18: ((2, 2, 2, 2), 2), 34: ((3, 4, 6, 3), 2), 50: ((3, 4, 6, 3), 3),
             101: ((3, 4, 23, 3), 3), 152: ((3, 8, 36, 3), 3)}
    for depth, (blocks, convs) in table.items():
        got = _call(fn, blocks, convs)
        if got != depth:
            raise AssertionError(
                f"ResNet-{depth} ({list(blocks)}, {convs} convolutions per block): got {got!r}; count the stem "
                "convolution, every convolution on the main path of every block, and the final fc layer "
                "(projection shortcuts are not counted)")
    _ok("your formula gives 18, 34, 50, 101 and 152")


def check_extra_block_cost_function(fn: Callable[[int], tuple[int, int]], image_size: int = 224) -> None:
    """Check ``fn(stage) -> (parameters, MACs)`` of one more (non-first) bottleneck in ``layer<stage>``.

    Measured on a real ``Bottleneck(4p, p)`` at the stage's resolution (``p = 64 * 2**(stage - 1)``,
    the side ``image_size / 4 / 2**(stage - 1)``, rounded up at each stride 2), with
    :func:`tutorial_lib.cost.count_parameters` and :func:`tutorial_lib.cost.count_flops`.
    """
    from tutorial_lib.blocks import Bottleneck
    from tutorial_lib.cost import count_flops, count_parameters
    from tutorial_lib.layers import conv_output_size

    side = conv_output_size(conv_output_size(image_size, 7, 2, 3), 3, 2, 1)
    results = []
    for stage in (1, 2, 3, 4):
        if stage > 1:
            side = conv_output_size(side, 3, 2, 1)
        planes = 64 * 2 ** (stage - 1)
        block = Bottleneck(4 * planes, planes)
        expected = (count_parameters(block), count_flops(block, (4 * planes, side, side))["macs"])
        got = _pair(_call(fn, stage), "(parameters, macs)")
        if got[0] != expected[0]:
            hint = ("count the BatchNorm weights and biases too (2 per channel)"
                    if got[0] == expected[0] - 2 * 6 * planes else
                    "the block is 1x1 (4p -> p), 3x3 (p -> p), 1x1 (p -> 4p), each followed by BatchNorm")
            raise AssertionError(f"layer{stage} (p = {planes}): {got[0]!r} parameters, expected another number; {hint}")
        if got[1] != expected[1]:
            hint = f"MACs count each weight once per output pixel: the side of layer{stage} at {image_size} px is {side}"
            if stage > 1 and got[1] == expected[1] * 4 ** (stage - 1):
                hint = "the channels double (4x the weights) but the side halves (a quarter of the pixels) at each stage"
            if got[1] == 2 * expected[1]:
                hint = "that is FLOPs (2 per MAC); count multiply-adds"
            raise AssertionError(f"layer{stage}: {got[1]!r} MACs, expected another number; {hint}")
        results.append(expected)
    ratio = results[3][0] / results[0][0]
    _ok(f"one more block costs {results[0][1] / 1e6:.1f} MMACs in every stage, but {ratio:.0f}x the parameters in "
        "layer4 as in layer1")


@_keeps_global_rng
def check_small_resnet(model: nn.Module, *, max_params: int, max_macs: int, image_size: int, num_classes: int) -> None:
    """Check a scaled-down ResNet-101: same stages and blocks, within a parameter and MAC budget.

    The model runs one eval-mode forward pass on its own device and is then put back in the mode it
    had.
    """
    import torch

    from tutorial_lib.blocks import Bottleneck
    from tutorial_lib.cost import count_flops, count_parameters
    from tutorial_lib.models import ResNet

    if not isinstance(model, ResNet):
        raise AssertionError(f"build the model with tutorial_lib.models.resnet101(...), got {type(model).__name__}")
    if model.block is not Bottleneck or model.stage_blocks != (3, 4, 23, 3):
        raise AssertionError("keep the architecture a ResNet-101 (Bottleneck, [3, 4, 23, 3]); change width and stem only")
    # count_flops restores only the top-level mode (model.train(was_training) resets every
    # submodule), so record each module's mode before it runs.
    modes = {m: m.training for m in model.modules()}
    params = count_parameters(model)
    try:
        macs = count_flops(model, image_size)["macs"]
    finally:
        _restore_modes(modes)
    if params > max_params:
        raise AssertionError(f"{params:,} parameters > {max_params:,}: parameters grow with width squared; try a smaller width")
    if macs > max_macs:
        raise AssertionError(f"{macs / 1e6:,.0f} MMACs > {max_macs / 1e6:,.0f}: reduce the width, or check the stem")
    param = next(model.parameters())
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, model.in_channels, image_size, image_size, device=param.device, dtype=param.dtype))
    finally:
        _restore_modes(modes)
    if out.shape != (2, num_classes):
        raise AssertionError(f"the model outputs {tuple(out.shape[1:])} per image; set num_classes={num_classes}")
    _ok(f"a ResNet-101 with {params:,} parameters and {macs / 1e6:,.1f} MMACs at {image_size} px")


def check_stage_shapes(answer: dict[str, tuple[int, int, int]], *, model: nn.Module, image_size: int) -> None:
    """Check predicted ``{"layer1": (C, H, W), ...}`` for ``model`` at ``image_size`` (batch dimension left out)."""
    from tutorial_lib.models import stage_shapes

    shapes = stage_shapes(model, image_size)
    if not isinstance(answer, dict):
        raise AssertionError(f"store a dict like {{'layer1': (256, 56, 56), ...}}, got {type(answer).__name__}")
    for name in ("layer1", "layer2", "layer3", "layer4"):
        expected = shapes[name][1:]
        got = answer.get(name)
        try:
            right = tuple(got) == expected
        except TypeError:  # None (a stage left out) or a single number
            right = False
        if not right:
            # Say which part is wrong without printing the expected shape: the exercise is the prediction.
            hint = ("channels are width * 2**i * 4, and the resolution halves at layer2, layer3 and layer4 "
                    "(ceil of odd sizes)")
            if isinstance(got, (tuple, list)) and len(got) == 3:
                if got[0] == expected[0]:
                    hint = ("the channels are right; follow the side through conv1, the max-pool and each "
                            "stride-2 stage with the output-size formula, rounding odd sizes up")
                elif tuple(got[1:]) == expected[1:]:
                    hint = "the size is right; the channels are width * 2**i * 4 (256, 512, 1024, 2048 at width 64)"
            raise AssertionError(f"{name}: {got!r} is not its output shape; {hint}")
    _ok(f"all four stage shapes at {image_size} px")


# --- 02 residual blocks ------------------------------------------------------------------------


@_keeps_global_rng
def check_shortcut_function(fn: Callable[[int, int, int], nn.Module]) -> None:
    """Check ``fn(inplanes, planes, stride) -> nn.Module``: the shortcut of a BasicBlock.

    It must be the identity (no parameters) when the block keeps shape, and otherwise a 1x1
    convolution with the block's stride followed by BatchNorm, loadable into
    ``tutorial_lib.blocks.projection`` (He et al. 2016, sec 3.3, option B) and computing the same
    outputs in training and in eval mode (with randomized BatchNorm statistics, so that eval mode
    has something to get wrong).
    """
    import torch
    from torch import nn

    from tutorial_lib.blocks import projection
    from tutorial_lib.norm import randomize_norm

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 8, 8, generator=gen)
    same = _call(fn, 16, 16, 1)
    if not isinstance(same, nn.Module):
        raise AssertionError(f"return an nn.Module (nn.Identity() when nothing changes), got {type(same).__name__}")
    if sum(p.numel() for p in same.parameters()) != 0 or not torch.equal(same(x), x):
        raise AssertionError("with inplanes == planes and stride 1 the shortcut is the identity: return nn.Identity()")
    for inplanes, planes, stride in [(16, 32, 2), (16, 32, 1), (16, 16, 2)]:
        got = _call(fn, inplanes, planes, stride)
        expected = projection(inplanes, planes, stride)
        n_got = sum(p.numel() for p in got.parameters())
        n_expected = sum(p.numel() for p in expected.parameters())
        convs = [m for m in got.modules() if isinstance(m, nn.Conv2d)]
        where = f"shortcut({inplanes}, {planes}, stride={stride})"
        if not convs:
            raise AssertionError(f"{where}: the shapes differ, so the shortcut needs a 1x1 nn.Conv2d (a projection)")
        conv = convs[0]
        if conv.kernel_size != (1, 1):
            raise AssertionError(f"{where}: use a 1x1 convolution (kernel_size=1), got {conv.kernel_size}")
        if conv.stride != (stride, stride):
            raise AssertionError(f"{where}: the convolution must use the block's stride ({stride}) to match F(x)'s size")
        if conv.bias is not None:
            raise AssertionError(f"{where}: pass bias=False; the BatchNorm after it has its own shift")
        if not any(isinstance(m, nn.BatchNorm2d) for m in got.modules()):
            raise AssertionError(f"{where}: follow the convolution with nn.BatchNorm2d({planes})")
        if n_got != n_expected:
            raise AssertionError(f"{where}: {n_got} parameters, expected {n_expected} (conv 1x1 without bias + BatchNorm)")
        try:
            expected.load_state_dict(got.state_dict(), strict=True)
        except RuntimeError as error:
            raise AssertionError(
                f"{where}: build it as nn.Sequential(conv, bn) so its keys are 0.weight, 1.weight, ... ({error})"
            ) from None
        randomize_norm(expected)
        got.load_state_dict(expected.state_dict())
        x_in = torch.randn(2, inplanes, 8, 8, generator=gen)
        for mode in ("train", "eval"):
            got.train(mode == "train")
            expected.train(mode == "train")
            with torch.no_grad():
                out_got, out_expected = got(x_in.clone()), expected(x_in.clone())
            if out_got.shape != out_expected.shape:
                raise AssertionError(f"{where}: output shape {tuple(out_got.shape)}, expected {tuple(out_expected.shape)}; "
                                     "a 1x1 convolution needs no padding")
            if not torch.allclose(out_got, out_expected, atol=1e-6):
                raise AssertionError(f"{where}: same weights as tutorial_lib.blocks.projection but different outputs in "
                                     f"{mode} mode; the projection is the convolution, then the BatchNorm, nothing else")
    _ok("identity when the shape is kept, a 1x1 projection + BatchNorm otherwise; equals tutorial_lib.blocks.projection")


@_keeps_global_rng
def check_zero_init_function(fn: Callable[[nn.Module], Any]) -> None:
    """Check ``fn(block)``: zero the scale of a BasicBlock's last BatchNorm so the block starts as the identity.

    Goyal et al. 2017 ("Accurate, Large Minibatch SGD", sec 5.1) and torchvision's
    ``zero_init_residual=True``: with ``bn2.weight = 0`` the residual branch outputs 0 and, for the
    non-negative input a previous ReLU produces, the block returns its input unchanged.
    """
    import torch

    from tutorial_lib.blocks import BasicBlock

    gen = torch.Generator().manual_seed(0)
    block = BasicBlock(8, 8)
    with torch.no_grad():  # non-trivial BatchNorm parameters, so a wrong tensor cannot look right
        for bn in (block.bn1, block.bn2):
            bn.weight.uniform_(0.5, 1.5, generator=gen)
        block.bn1.bias.uniform_(-0.5, 0.5, generator=gen)  # bn2.bias stays 0, as after initialisation
    before = {k: v.clone() for k, v in block.state_dict().items()}
    result = _call(fn, block)
    if result is not None and result is not block:
        raise AssertionError("change the block in place (and return it or nothing), do not build a new one")
    after = block.state_dict()
    changed = [k for k in before if k != "bn2.weight" and not torch.equal(before[k], after[k])]
    if not torch.equal(after["bn2.weight"], torch.zeros_like(after["bn2.weight"])):
        hint = f" (you changed {changed} instead)" if changed else ""
        raise AssertionError("bn2.weight (the last BatchNorm's scale, gamma) must be all zeros" + hint)
    if changed:
        raise AssertionError(f"only bn2.weight should change, but {changed} changed too")
    x = torch.relu(torch.randn(4, 8, 6, 6, generator=gen))  # what a block receives: the output of a ReLU
    for mode in ("train", "eval"):
        getattr(block, mode)()
        with torch.no_grad():
            if not torch.equal(block(x), x):
                raise AssertionError(f"in {mode}() mode the block should return its (non-negative) input unchanged")
    _ok("bn2.weight = 0: the residual branch outputs zero and the block starts as the identity")


@_keeps_global_rng
def check_preact_block(cls: Callable[..., nn.Module]) -> None:
    """Check a pre-activation basic block class (He et al. 2016b, "Identity Mappings", Fig. 1b and Fig. 4e).

    ``cls(inplanes, planes, stride=1, downsample=None)`` must hold ``bn1`` (``inplanes`` channels),
    ``conv1`` (3x3, the block's stride, no bias), ``bn2``, ``conv2`` (3x3, no bias) and compute
    ``y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut``, with nothing after the addition. The
    shortcut is ``x``, or ``downsample`` applied to ``x`` or to ``relu(bn1(x))`` (implementations
    differ; both are accepted). The outputs are compared in training and in eval mode, with random
    BatchNorm parameters and statistics, against that formula evaluated with the block's own layers.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tutorial_lib.blocks import projection
    from tutorial_lib.norm import randomize_norm

    gen = torch.Generator().manual_seed(0)
    for inplanes, planes, stride in [(8, 8, 1), (8, 16, 2)]:
        downsample = None if (inplanes, stride) == (planes, 1) else projection(inplanes, planes, stride)
        where = f"{getattr(cls, '__name__', 'your block')}({inplanes}, {planes}, stride={stride})"
        block = _call(cls, inplanes, planes, stride, downsample)
        if not isinstance(block, nn.Module):
            raise AssertionError(f"{where}: the class must build an nn.Module, got {type(block).__name__}")
        missing = [name for name in ("bn1", "conv1", "bn2", "conv2") if not isinstance(getattr(block, name, None), nn.Module)]
        if missing:
            raise AssertionError(f"{where}: name the layers bn1, conv1, bn2, conv2 (as in BasicBlock); missing {missing}")
        if getattr(block.bn1, "num_features", None) != inplanes:
            raise AssertionError(f"{where}: bn1 comes first and normalises the block's input: nn.BatchNorm2d({inplanes}) "
                                 "(inplanes channels), not planes")
        for name, conv_stride in (("conv1", stride), ("conv2", 1)):
            conv = getattr(block, name)
            if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3) or conv.stride != (conv_stride, conv_stride):
                raise AssertionError(f"{where}: {name} is a 3x3 nn.Conv2d with stride {conv_stride} and padding 1")
            if conv.bias is not None:
                raise AssertionError(f"{where}: pass bias=False to {name}: a BatchNorm follows it (here bn2, or the next block's bn1)")
        randomize_norm(block)
        x = torch.randn(4, inplanes, 8, 8, generator=gen)
        for mode in ("train", "eval"):
            block.train(mode == "train")
            with torch.no_grad():
                got = _call(block, x.clone())
                pre = F.relu(block.bn1(x))
                branch = block.conv2(F.relu(block.bn2(block.conv1(pre))))
                shortcuts = [x] if downsample is None else [downsample(pre), downsample(x)]
                if not isinstance(got, torch.Tensor) or got.shape != branch.shape:
                    raise AssertionError(f"{where}: forward must return a tensor of shape {tuple(branch.shape)}, got "
                                         f"{getattr(got, 'shape', type(got).__name__)}")
                if any(torch.allclose(got, branch + s, atol=1e-5) for s in shortcuts):
                    continue
                if any(torch.allclose(got, F.relu(branch + s), atol=1e-5) for s in shortcuts):
                    raise AssertionError(f"{where}: remove the ReLU after the addition; in a pre-activation block "
                                         "y = F(x) + x is a pure sum (the next block starts with its own BN and ReLU)")
                if torch.allclose(got, branch, atol=1e-5):
                    raise AssertionError(f"{where}: add the shortcut: y = F(x) + x (with downsample when it is given)")
                post = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))) if inplanes == planes else branch)
                if inplanes == planes and any(torch.allclose(got, F.relu(post + s), atol=1e-5) or
                                              torch.allclose(got, post + s, atol=1e-5) for s in shortcuts):
                    raise AssertionError(f"{where}: that is the post-activation order (conv, BN, ReLU); pre-activation "
                                         "puts BN and ReLU before each convolution: BN, ReLU, conv, BN, ReLU, conv")
                raise AssertionError(f"{where}: outputs differ from conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut in "
                                     f"{mode} mode; check the order BN, ReLU, conv, BN, ReLU, conv, then the addition")
    _ok("BN, ReLU, conv, BN, ReLU, conv, then a pure sum with the shortcut: a pre-activation block")


# --- 02, 03, 06: an inline block equals the package's ------------------------------------------


def _seeded_forward(module: nn.Module, x: Tensor) -> Any:
    """``module(x)`` without autograd, on a private random state seeded with 0 (for dropout and the like).

    Both modules of :func:`prove_equal` then draw the same random numbers, and the global random
    state is left as it was.
    """
    import torch

    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.default_generator.manual_seed(0)
        if devices:
            with torch.cuda.device(x.device):
                torch.cuda.manual_seed(0)
        return module(x.clone())  # a copy: an in-place operation cannot change what the other module sees


def prove_equal(inline: nn.Module, reference: nn.Module, x: Tensor) -> str:
    """Prove that a module built inline computes exactly what a reference module computes.

    Three steps, each an assertion:

    1. the same number of parameters;
    2. the reference's ``state_dict`` loads into the inline module with ``strict=True``: every key
       present, none extra, every shape equal (so pretrained weights of one load into the other);
    3. with those weights, bit-identical outputs (``torch.equal``, not merely close) on ``x``, first
       in training mode (BatchNorm uses the batch statistics and updates its running ones), then in
       eval mode (BatchNorm uses the running statistics, which the training-mode pass has just
       updated in both modules, so a difference in how they are updated shows too).

    Fresh BatchNorm layers are the identity in eval mode; call
    :func:`tutorial_lib.norm.randomize_norm` on the reference first so that eval mode has something
    to get wrong.

    Afterwards both modules hold the reference's weights and statistics as they were before the
    call (the update of the training-mode pass is undone), and every submodule of both is back in
    the train/eval mode it had. Both forward passes run without autograd, on the same private
    random state, so the global random state is untouched.

    Args:
        inline: The module built inline (its weights are replaced by the reference's).
        reference: The module to match, e.g. ``tutorial_lib.blocks.Bottleneck``.
        x: An input batch, on the modules' device.

    Returns:
        A one-line summary, e.g. ``"70,400 parameters each, strict load ok, bit-identical outputs in
        train and eval mode"``.

    Raises:
        TypeError: If ``inline`` or ``reference`` is not an ``nn.Module``, or ``x`` not a tensor.
        AssertionError: If a step fails; the message says which, and for outputs the mode and by
            how much they differ.
    """
    import torch
    from torch import Tensor, nn

    from tutorial_lib.cost import count_parameters

    for name, value in (("inline", inline), ("reference", reference)):
        if not isinstance(value, nn.Module):
            raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (an input batch), got {type(x).__name__}")
    n_inline, n_reference = count_parameters(inline), count_parameters(reference)
    if n_inline != n_reference:
        raise AssertionError(
            f"parameter counts differ: inline {n_inline:,}, reference {n_reference:,} ({n_inline - n_reference:+,}); "
            "compare print(inline) with print(reference) layer by layer (channels, kernel sizes, bias=False)"
        )
    saved = {key: value.detach().clone() for key, value in reference.state_dict().items()}
    modes = {m: m.training for m in (*inline.modules(), *reference.modules())}
    loaded = False
    try:
        try:
            inline.load_state_dict(saved, strict=True)
        except RuntimeError as error:
            raise AssertionError(
                "the reference's weights do not load into the inline module with strict=True (a key is "
                f"missing, extra or shaped differently; attribute names are the keys): {error}"
            ) from None
        loaded = True
        for mode in ("train", "eval"):
            inline.train(mode == "train")
            reference.train(mode == "train")
            got, expected = _seeded_forward(inline, x), _seeded_forward(reference, x)
            if not isinstance(got, Tensor) or not isinstance(expected, Tensor):
                raise AssertionError(
                    f"both modules must return a tensor; inline returned {type(got).__name__}, "
                    f"reference {type(expected).__name__}"
                )
            if got.shape != expected.shape or got.dtype != expected.dtype:
                raise AssertionError(
                    f"outputs differ in {mode} mode: inline gives {tuple(got.shape)} {got.dtype}, "
                    f"reference {tuple(expected.shape)} {expected.dtype}"
                )
            if not torch.equal(got, expected):
                differ = got != expected
                largest = (got.double() - expected.double()).abs().max().item()
                hint = (
                    "training mode agrees, so the layers and weights match: look at what eval mode changes "
                    "(BatchNorm's running statistics: its eps and momentum, track_running_stats)"
                    if mode == "eval"
                    else "same weights, so the forward pass differs: the order of the layers, a missing "
                    "ReLU, or where the shortcut is added"
                )
                raise AssertionError(
                    f"outputs differ in {mode} mode: max |difference| = {largest:.3g}, "
                    f"{int(differ.sum()):,} of {got.numel():,} values differ; {hint}"
                )
    finally:
        with torch.no_grad():
            reference.load_state_dict(saved)
            if loaded:
                inline.load_state_dict(saved)
        _restore_modes(modes)
    return f"{n_inline:,} parameters each, strict load ok, bit-identical outputs in train and eval mode"


# --- 05 inter-layer normalization --------------------------------------------------------------


def check_bn_fold(scale: Tensor, shift: Tensor, bn: nn.Module) -> None:
    """Check that ``x * scale + shift`` (per channel) equals the eval-mode output of BatchNorm ``bn``.

    Folding is how BatchNorm costs nothing at inference: the per-channel scale and shift can even be
    merged into the preceding convolution's weights and bias. ``bn`` is run once in eval mode and
    then put back in the mode it had.
    """
    import torch

    from tutorial_lib.norm import BATCH_NORM_TYPES, FrozenBatchNorm2d

    if not isinstance(bn, (*BATCH_NORM_TYPES, FrozenBatchNorm2d)) or getattr(bn, "running_mean", None) is None:
        raise TypeError(f"bn must be a BatchNorm layer with running statistics, got {type(bn).__name__}")
    if getattr(bn, "weight", None) is None:
        raise TypeError("bn must have affine parameters (weight and bias); this one was built with affine=False")
    for name, value in (("scale", scale), ("shift", shift)):
        if not isinstance(value, torch.Tensor):
            raise AssertionError(f"{name} must be a tensor with one value per channel, got {type(value).__name__}")
        if value.shape != (bn.num_features,):
            raise AssertionError(f"{name} must have shape ({bn.num_features},), one value per channel; got {tuple(value.shape)}")
    was_training = bn.training
    bn.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4, bn.num_features, 5, 5, generator=gen) * 3 + 1
        x = x.to(bn.running_mean.device, bn.running_mean.dtype)
        with torch.no_grad():
            expected = bn(x)
            got = x * scale.detach().view(1, -1, 1, 1) + shift.detach().view(1, -1, 1, 1)
    finally:
        bn.train(was_training)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
        with torch.no_grad():
            right_scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        if torch.allclose(scale.detach(), 1 / torch.sqrt(bn.running_var + bn.eps), rtol=1e-4):
            raise AssertionError("close: the scale must include the learned weight (gamma) too")
        if torch.allclose(scale.detach(), right_scale.detach(), rtol=1e-4):
            raise AssertionError("the scale is right; the shift is bias - running_mean * scale")
        raise AssertionError("scale = weight / sqrt(running_var + eps): use the running statistics, not a batch's")
    # Without eps the outputs above differ by only about eps / (2 * running_var) relative, inside
    # the tolerance; compare the scale itself, in float64, on the channels where eps shows.
    with torch.no_grad():
        var, weight = bn.running_var.double(), bn.weight.double()
        right, no_eps = weight / torch.sqrt(var + bn.eps), weight / torch.sqrt(var)
        given = scale.detach().to(right.device, torch.float64)
        telling = (right - no_eps).abs() > 1e-6 * right.abs()  # beyond float32 rounding
        if telling.any() and bool(((given - no_eps).abs() < (given - right).abs())[telling].all()):
            raise AssertionError("close: add eps to the running variance before the square root, sqrt(running_var + eps)")
    _ok("eval-mode BatchNorm is one multiply and one add per value: y = x * scale + shift")


def check_group_norm_function(fn: Callable[[Tensor, int, float], Tensor]) -> None:
    """Check ``fn(x, num_groups, eps)`` against ``torch.nn.functional.group_norm`` (no affine).

    Wu & He 2018, eq. 1 with the set S_i of eq. 7: each sample's channels are split into
    ``num_groups`` groups and each group is normalized over its channels and all positions.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 12, 5, 4, generator=gen) * 2 + torch.arange(12.0).view(1, 12, 1, 1)
    for groups in (1, 3, 4, 12):
        got = _call(fn, x.clone(), groups, 1e-5)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            raise AssertionError(f"return a tensor shaped like x {tuple(x.shape)}, got {getattr(got, 'shape', type(got).__name__)}")
        expected = F.group_norm(x, groups, eps=1e-5)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            if groups == 1 and torch.allclose(got, F.instance_norm(x, eps=1e-5), atol=1e-5):
                raise AssertionError("with num_groups=1 every channel shares one group (LayerNorm), not one group per channel")
            per_batch = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(0, 2, 3), correction=0, keepdim=True) + 1e-5)
            if torch.allclose(got, per_batch, atol=1e-5):
                raise AssertionError("that is BatchNorm: GroupNorm never mixes samples, so keep the batch axis apart")
            raise AssertionError(
                f"wrong for num_groups={groups}: reshape to (N, G, C // G * H * W), normalize the last axis with "
                "the biased variance (correction=0), reshape back"
            )
        if not torch.allclose(_call(fn, x[:1].clone(), groups, 1e-5), got[:1], atol=1e-6):
            raise AssertionError("a sample's output must not depend on the rest of the batch")
    # A large eps changes the result visibly: an eps that is accepted but never used shows here.
    got = _call(fn, x.clone(), 3, 4.0)
    if not isinstance(got, torch.Tensor) or not torch.allclose(got, F.group_norm(x, 3, eps=4.0), rtol=1e-4, atol=1e-5):
        raise AssertionError("wrong for eps=4.0: add eps to the variance inside the square root, sqrt(var + eps)")
    _ok("GroupNorm: per sample, per group of channels; equals torch.nn.functional.group_norm for 1, 3, 4 and 12 groups")


ZERO_INIT_GRAD_PARAMS = ("conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight", "bn2.bias")
"""The parameters of ``layer1[0]`` that :func:`check_zero_init_gradients` asks about, in forward order."""


@_keeps_global_rng
def check_zero_init_gradients(prediction: dict[str, str], fn: Callable[[nn.Module, Tensor, Tensor], dict[str, float]]) -> None:
    """Check a prediction of which parameters of a zero-initialised block get a gradient, and its measurement.

    ``prediction`` maps each name of :data:`ZERO_INIT_GRAD_PARAMS` to ``"zero"`` or ``"nonzero"``: the
    gradient that parameter of ``layer1[0]`` receives at the first step of a ResNet-18 built with
    ``zero_init_residual=True`` (Goyal et al. 2017, section 5.1). ``fn(model, images, labels)`` runs
    one cross-entropy forward and backward pass from fresh gradients and returns the gradient norm of
    each of those parameters. Both are compared with the check's own measurement on a small network.
    """
    import copy

    import torch
    import torch.nn.functional as F

    from tutorial_lib.models import resnet18

    names = ZERO_INIT_GRAD_PARAMS
    if not isinstance(prediction, dict) or set(prediction) != set(names):
        got = sorted(prediction) if isinstance(prediction, dict) else type(prediction).__name__
        raise AssertionError(f"prediction must be a dict with exactly the keys {list(names)}, got {got}")
    unanswered = [name for name in names if prediction[name] not in ("zero", "nonzero")]
    if unanswered:
        raise AssertionError(f"predict 'zero' or 'nonzero' for {unanswered} before you measure")
    model = resnet18(width=8, stem="small", num_classes=10, zero_init_residual=True)
    model.train()
    images = torch.rand(8, 3, 32, 32)
    labels = torch.randint(0, 10, (8,))
    reference_model = copy.deepcopy(model)
    loss = F.cross_entropy(reference_model(images), labels)
    loss.backward()
    block = dict(reference_model.layer1[0].named_parameters())
    expected = {name: block[name].grad.norm().item() for name in names}
    for attempt in ("first", "second"):
        got = _call(fn, model, images, labels)
        if not isinstance(got, dict) or set(got) != set(names):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise AssertionError(f"return a dict with the keys {list(names)} (the gradient norm of each), got {keys}")
        try:
            values = {name: float(got[name]) for name in names}
        except (TypeError, ValueError, RuntimeError):
            raise AssertionError("each value must be one number: the norm of that parameter's .grad, e.g. "
                                 "param.grad.norm().item()") from None
        for name in names:
            if abs(values[name] - expected[name]) > 1e-4 * max(1.0, expected[name]):
                if attempt == "second":
                    raise AssertionError("a second call gave other norms: the gradients accumulated. Call "
                                         "model.zero_grad() before loss.backward(), so each call measures one step")
                raise AssertionError(f"{name}: you measured {values[name]:.4g}, expected {expected[name]:.4g}. Run "
                                     "model(images), F.cross_entropy(..., labels), .backward(), then read "
                                     "model.layer1[0].<name>.grad.norm() for each name")
    truth = {name: "zero" if expected[name] == 0.0 else "nonzero" for name in names}
    wrong = [name for name in names if prediction[name] != truth[name]]
    if wrong:
        raise AssertionError(
            f"your measurement is right, but the prediction was wrong for {wrong}: measured {truth}. Why: the "
            "branch's output is bn2.weight * x_hat + bn2.bias, so d(output)/d(x_hat) = bn2.weight = 0, and by the "
            "chain rule everything before bn2's scale (conv1, bn1, conv2) gets exactly zero gradient. bn2.weight "
            "itself gets sum(grad * x_hat), and bn2.bias sum(grad): both non-zero. Update prediction to what you "
            "now understand, and rerun")
    _ok("only bn2's weight and bias get a gradient at the first step; the branch's convolutions wait until "
        "bn2.weight has moved away from 0")


# --- 06 multi-scale architectures ---------------------------------------------------------------


def check_fpn_level_function(fn: Callable[[float, float], int]) -> None:
    """Check ``fn(width, height) -> level``: the FPN rule that picks a pyramid level for an object.

    Lin et al. 2017 (FPN), eq. 1: ``k = floor(k0 + log2(sqrt(w * h) / 224))`` with ``k0 = 4`` (an object
    of ImageNet's 224 px goes to C4, one of 112 px to C3), clamped to the levels that exist, 2 to 5.
    """
    import math

    def reference(width: float, height: float) -> int:
        return min(5, max(2, math.floor(4 + math.log2(math.sqrt(width * height) / 224))))

    cases = [(224, 224), (112, 112), (448, 448), (223, 223), (56, 56), (300, 150), (50, 200), (32, 32),
             (1000, 800), (896, 896), (160, 160), (20, 500)]
    for width, height in cases:
        expected = reference(width, height)
        got = _call(fn, width, height)
        if got != expected:
            hints = []
            unclamped = math.floor(4 + math.log2(math.sqrt(width * height) / 224))
            other_sizes = (width, height, (width + height) / 2, max(width, height), min(width, height))
            if got == unclamped:
                hints.append("clamp the result to the levels that exist, 2 (C2) to 5 (C5)")
            elif width != height and got in {reference(size, size) for size in other_sizes}:
                hints.append("the object's scale is the geometric mean sqrt(width * height)")
            elif got == min(5, max(2, round(4 + math.log2(math.sqrt(width * height) / 224)))):
                hints.append("take the floor, not the nearest integer")
            raise AssertionError(
                f"a {width}x{height} px object belongs on level {expected}, your function says {got!r}; "
                + (hints[0] if hints else "k = floor(4 + log2(sqrt(w * h) / 224)), clamped to 2..5"))
    _ok(f"your rule matches FPN's eq. 1 on {len(cases)} object sizes (224 px -> C4, 112 px -> C3, ...)")


@_keeps_global_rng
def check_res2net_params_function(fn: Callable[[int, int, int, int, int], int]) -> None:
    """Check ``fn(inplanes, planes, stride, base_width, scale) -> parameters`` of a Res2Net bottleneck.

    Compared with :class:`tutorial_lib.blocks.Res2NetBottleneck`, including its projection shortcut
    when the block needs one (``stride != 1`` or ``inplanes != 4 * planes``).
    """
    from tutorial_lib.blocks import Res2NetBottleneck, projection
    from tutorial_lib.cost import count_parameters

    configs = [(256, 64, 1, 26, 4), (64, 64, 1, 26, 4), (256, 128, 2, 26, 4), (1024, 256, 1, 26, 4),
               (512, 128, 1, 14, 8), (64, 16, 2, 26, 4), (32, 8, 1, 48, 2)]
    for inplanes, planes, stride, base_width, scale in configs:
        out = planes * Res2NetBottleneck.expansion
        shortcut = projection(inplanes, out, stride) if stride != 1 or inplanes != out else None
        block = Res2NetBottleneck(inplanes, planes, stride, shortcut, base_width=base_width, scale=scale)
        expected = count_parameters(block)
        got = _call(fn, inplanes, planes, stride, base_width, scale)
        if isinstance(got, bool) or not isinstance(got, int):
            raise AssertionError(f"return the count as an int, got {type(got).__name__} ({got!r}); use // for the width")
        if got != expected:
            width = planes * base_width // 64
            hint = "count every BatchNorm too (a weight and a bias per channel)"
            if got == expected + 9 * width * width + 2 * width:
                hint = f"there are scale - 1 = {scale - 1} 3x3 convolutions: one group passes through unconvolved"
            elif shortcut is not None and got == expected - inplanes * out - 2 * out:
                hint = "this block needs a projection shortcut: a 1x1 convolution and its BatchNorm"
            elif shortcut is None and got == expected + inplanes * out + 2 * out:
                hint = "this block keeps the identity shortcut (same channels, stride 1): no projection"
            raise AssertionError(
                f"Res2NetBottleneck({inplanes}, {planes}, stride={stride}, base_width={base_width}, scale={scale}): "
                f"expected {expected:,}, got {got:,}; {hint} (width = planes * base_width // 64 = {width})")
    _ok(f"your count matches tutorial_lib.blocks.Res2NetBottleneck on {len(configs)} configurations")


# --- 08 tuning ---------------------------------------------------------------------------------


def check_warmup_factor_function(fn: Callable[[int, int], float]) -> None:
    """Check ``fn(step, warmup_steps)``: the multiplier of a linear warm-up, then the full rate.

    The ramp the exercise asks for rises by the same increment at every step, starts one increment
    above zero (step 0 already learns) and takes its last increment into the full rate at step
    ``warmup_steps``, so the increment is ``1 / (warmup_steps + 1)``: the warm-up ``fit`` applies
    to its ``"constant"`` and ``"step"`` schedules (``tutorial_lib.train.schedule_factor``; Goyal
    et al. 2017, sec 2.2, ramp linearly from a small rate).
    """
    import math

    from tutorial_lib.train import schedule_factor

    for warmup_steps in (0, 1, 4, 10):
        total = warmup_steps + 6
        got = []
        for step in range(total):
            value = _call(fn, step, warmup_steps)
            try:
                got.append(float(value))
            except (TypeError, ValueError):
                raise AssertionError(f"return the multiplier as a number, got {type(value).__name__} "
                                     f"for step={step}, warmup_steps={warmup_steps}") from None
        expected = [schedule_factor("constant", step, warmup_steps=warmup_steps, total_steps=total) for step in range(total)]
        if all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(got, expected)):
            continue
        if any(not math.isclose(v, 1.0, rel_tol=1e-9) for v in got[warmup_steps:]):
            raise AssertionError(f"from step warmup_steps on the rate is the full rate: the factor is 1.0 "
                                 f"(warmup_steps={warmup_steps}: got {[round(v, 4) for v in got[warmup_steps:]]})")
        ramp = got[:warmup_steps]
        if ramp and ramp[0] <= 0:
            raise AssertionError(f"step 0 gets the factor {ramp[0]:g}: a step at rate 0 is wasted; "
                                 "start one increment above zero")
        if ramp and math.isclose(ramp[-1], 1.0, rel_tol=1e-9):
            raise AssertionError("your ramp reaches the full rate at step warmup_steps - 1, one step early: the last "
                                 "increment (into 1.0) is taken at step warmup_steps, so there are warmup_steps + 1 increments")
        steps = [b - a for a, b in zip(ramp + [1.0], ramp[1:] + [1.0])]
        if any(not math.isclose(d, steps[0], rel_tol=1e-6) for d in steps):
            raise AssertionError(f"a linear ramp rises by the same increment at every step, the step into 1.0 "
                                 f"included; warmup_steps={warmup_steps} gave {[round(v, 4) for v in got[:warmup_steps + 1]]}")
        raise AssertionError(f"for warmup_steps={warmup_steps} expected {[round(v, 4) for v in expected]}, "
                             f"got {[round(v, 4) for v in got]}: equal increments d, the first value d, the value at "
                             "step warmup_steps exactly 1.0 (solve for d)")
    _ok("a linear warm-up: step 0 at 1 / (warmup_steps + 1) of the rate, the full rate from step warmup_steps on")


def check_smooth_losses_function(fn: Callable[[list[float], float], Sequence[float]]) -> None:
    """Check ``fn(losses, beta)`` against ``tutorial_lib.tuning.smooth_losses`` (bias-corrected EMA)."""
    import math

    from tutorial_lib.tuning import smooth_losses

    cases = [([2.3, 2.1, 2.2, 1.9, 1.7, 1.8, 1.2], 0.9), ([5.0] * 6, 0.98), ([1.0, 3.0, 2.0], 0.0), ([4.0, 2.0, 1.0, 0.5], 0.5)]
    for losses, beta in cases:
        got = _call(fn, list(losses), beta)
        expected = smooth_losses(losses, beta)
        try:
            got = [float(v) for v in got]
        except (TypeError, ValueError):
            raise AssertionError(f"return one smoothed value per loss (a list of floats), got {type(got).__name__}") from None
        if len(got) != len(expected):
            raise AssertionError(f"return one smoothed value per loss: {len(losses)} losses, {len(got)} values")
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(got, expected)):
            uncorrected, avg = [], 0.0
            for loss in losses:
                avg = beta * avg + (1 - beta) * loss
                uncorrected.append(avg)
            if all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, uncorrected)):
                raise AssertionError(
                    "close: that is the plain moving average, pulled towards its zero start "
                    f"(first value {got[0]:.3g} for a loss of {losses[0]}); divide step t's average by 1 - beta ** t"
                )
            raise AssertionError(
                f"for losses={losses} and beta={beta} expected {[round(v, 4) for v in expected]}, "
                f"got {[round(v, 4) for v in got]}; avg = beta * avg + (1 - beta) * loss, then avg / (1 - beta ** t), t from 1"
            )
    _ok("bias-corrected moving average: a constant loss stays constant from the first step on")


@_keeps_global_rng
def check_param_groups_function(fn: Callable[[nn.Module, float], list[dict[str, Any]]]) -> None:
    """Check ``fn(model, weight_decay)``: two groups, every 1-D parameter undecayed, the rest decayed."""
    import torch

    from tutorial_lib.models import resnet18, resnet101

    for build in (lambda: resnet18(width=8, stem="small", num_classes=10), lambda: resnet101(num_classes=1000)):
        model = build()  # the large model only once the small one passed
        model.fc.bias.requires_grad_(False)  # a frozen parameter belongs in no group
        groups = _call(fn, model, 0.05)
        if not isinstance(groups, (list, tuple)) or len(groups) != 2 or not all(isinstance(g, dict) for g in groups):
            raise AssertionError("return a list of two dicts: [{'params': [...], 'weight_decay': wd}, {'params': [...], 'weight_decay': 0.0}]")
        decay, no_decay = (list(g.get("params", [])) for g in groups)
        if groups[0].get("weight_decay") != 0.05 or groups[1].get("weight_decay") != 0.0:
            raise AssertionError("the first group decays (weight_decay=weight_decay), the second does not (weight_decay=0.0)")
        if any(not isinstance(p, torch.nn.Parameter) for p in decay + no_decay):
            # Before the identity checks below: a copy is never the model's parameter, so they
            # would report it as missing.
            raise AssertionError("put the parameters themselves (model.parameters()) in the groups, not copies")
        trainable = [p for p in model.parameters() if p.requires_grad]
        ids = [id(p) for p in decay + no_decay]
        if len(ids) != len(set(ids)):
            raise AssertionError("a parameter appears twice: each must be in exactly one group")
        if set(ids) != {id(p) for p in trainable}:
            if id(model.fc.bias) in ids:
                raise AssertionError("leave out parameters with requires_grad=False (frozen ones are not trained)")
            raise AssertionError("every trainable parameter must be in one of the two groups")
        wrong = [p.shape for p in no_decay if p.ndim != 1] + [p.shape for p in decay if p.ndim == 1]
        if wrong:
            raise AssertionError(f"split by shape: 1-D tensors (biases, norm weights) go undecayed; misplaced shapes: {wrong[:3]}")
    one_d = sum(p.ndim == 1 for p in model.parameters())  # the ResNet-101 of the last round
    _ok(f"two groups; ResNet-101 keeps {one_d} one-dimensional tensors (biases and norm parameters) out of weight decay")


# --- 07 multi-scale training --------------------------------------------------------------------


def _reference_test_size(
    split: str, train_size: int, candidates: Sequence[int], *, geometric: bool = True, log: bool = True
) -> int:
    """The candidate test size at which ``split``'s objects have the training objects' pixel size.

    An object covering a fraction ``f`` of the image is ``f * s`` pixels wide at test size ``s``. The
    match compares the geometric centres of the fraction ranges on a log scale (a 2x error either
    way counts the same), so the ideal size is ``train_size * centre(train) / centre(split)``.
    ``geometric=False`` (arithmetic centres) and ``log=False`` (differences of sizes) give the
    answers of the two usual slips, for the check's hints.
    """
    import math

    from tutorial_lib.data import OBJECT_SIZE_FRACTIONS

    def centre(name: str) -> float:
        low, high = OBJECT_SIZE_FRACTIONS[name]
        return math.sqrt(low * high) if geometric else (low + high) / 2

    ideal = train_size * centre("train") / centre(split)
    return min(candidates, key=lambda s: (abs(math.log(s / ideal)) if log else abs(s - ideal), s))


def check_test_size_function(fn: Callable[[str, int, Sequence[int]], int]) -> None:
    """Check ``fn(split, train_size, candidates) -> size``: the test resolution that undoes a scale shift."""
    cases = [("test", 32, (16, 24, 32, 48, 64)), ("test-small", 32, (16, 24, 32, 48, 64, 96)),
             ("test-large", 32, (16, 24, 32, 48, 64)), ("test-small", 24, (24, 32, 48, 64)),
             ("test-large", 48, (16, 24, 32, 40, 48)), ("test-small", 32, (24, 32, 40)),
             # Close calls: arithmetic centres pick 76 here, and differences of sizes pick 16 below.
             ("test-small", 32, (72, 74, 76, 78)), ("test-large", 64, (16, 48))]
    for split, train_size, candidates in cases:
        expected = _reference_test_size(split, train_size, candidates)
        got = _call(fn, split, train_size, candidates)
        if got != expected:
            hint = "an object of fraction f is f * s pixels at test size s; match the training objects' pixels"
            if (split == "test-small" and got < train_size) or (split == "test-large" and got > train_size):
                hint = "the wrong way round: small objects need a LARGER test image to look like the training objects"
            elif got == _reference_test_size(split, train_size, candidates, geometric=False):
                hint = "use the geometric centre sqrt(low * high) of each fraction range, not (low + high) / 2"
            elif got == _reference_test_size(split, train_size, candidates, log=False):
                hint = "compare sizes on a log scale, abs(log(size / ideal)): 2x too large is as bad as 2x too small"
            raise AssertionError(f"for {split!r} trained at {train_size} px, choosing from {candidates}, "
                                 f"the matching test size is {expected}, your function says {got!r}; {hint}")
    _ok(f"your rule picks the matching test resolution in {len(cases)} cases "
        f"(test-small trained at 32 px -> {_reference_test_size('test-small', 32, (16, 24, 32, 48, 64, 96))} px)")


def check_average_softmax_function(
    fn: Callable[[nn.Module, Tensor, Sequence[int]], Tensor], model: nn.Module, images: Tensor, sizes: Sequence[int]
) -> None:
    """Check ``fn(model, images, sizes)`` against :class:`tutorial_lib.multiscale.MultiScaleTTA`.

    ``fn`` and the reference run with ``model`` in eval mode; the model is put back in the mode it
    had afterwards. They then run once more with a small stand-in classifier whose logits depend
    strongly on the input resolution: a model whose outputs hardly change with the size (an
    untrained one, say) cannot tell one size's softmax, or the softmax of averaged logits, from the
    average of the softmaxes.
    """
    import torch
    from torch import nn

    from tutorial_lib.multiscale import MultiScaleTTA

    class SizeDependent(nn.Module):
        """Three logits from the image's mean brightness and its side: every resolution disagrees."""

        def forward(self, x: Tensor) -> Tensor:
            brightness = x.mean(dim=(1, 2, 3))
            side = torch.full_like(brightness, x.shape[-1] / 16)
            return torch.stack([2 * brightness, 3 * side - brightness, brightness**2 - 2 * side], dim=1)

    for net in (model, SizeDependent()):
        modes = {m: m.training for m in net.modules()}
        try:
            net.eval()
            with torch.no_grad():
                got = _call(fn, net, images, sizes)
                expected = MultiScaleTTA(net, sizes).eval()(images).softmax(dim=1)
                single = [MultiScaleTTA(net, [s]).eval()(images).softmax(dim=1) for s in sizes]
        finally:
            _restore_modes(modes)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            raise AssertionError(f"return a tensor of shape {tuple(expected.shape)} (images x classes), "
                                 f"got {getattr(got, 'shape', type(got).__name__)}")
        got = got.to(expected.device, expected.dtype)
        if not torch.allclose(got.sum(dim=1), torch.ones(len(got), device=got.device), atol=1e-4):
            raise AssertionError("each row should be a probability distribution (sum 1): average softmax outputs, not logits")
        if not torch.allclose(got, expected, atol=1e-5):
            if any(torch.allclose(got, s, atol=1e-5) for s in single):
                raise AssertionError("that is one resolution's softmax; average over every size in `sizes`")
            raise AssertionError("not quite: resize the batch to each size (tutorial_lib.multiscale.resize_batch), "
                                 "take the softmax of the model's logits, and average the probabilities")
    _ok(f"your average over {list(sizes)} px equals MultiScaleTTA's to within 1e-5")


def check_best_pair_function(fn: Callable[[Callable[[tuple[int, int]], float], Sequence[int]], tuple[int, int]]) -> None:
    """Check ``fn(score, candidates) -> (a, b)``: the pair of distinct candidates with the highest ``score``.

    Notebook 07, exercise 3: which two test resolutions, averaged, serve a network best. The check
    runs ``fn`` on two made-up scores whose best pair is known. In the first, neighbouring sizes near
    the training ones (32 and 48 px) make a good pair but not the best, (24, 64); the second uses
    other candidates, so an answer that ignores ``candidates`` fails.

    Args:
        fn: the learner's function; it gets ``score(pair) -> float`` and the candidate sizes.

    Raises:
        AssertionError: with a hint, if ``fn`` returns anything but the best pair.
    """
    import itertools

    first = {(16, 24): 0.30, (16, 32): 0.45, (16, 48): 0.50, (16, 64): 0.35, (24, 32): 0.55,
             (24, 48): 0.60, (24, 64): 0.72, (32, 48): 0.58, (32, 64): 0.66, (48, 64): 0.40}

    def score_first(pair: tuple[int, int]) -> float:
        return first[tuple(sorted(pair))]  # type: ignore[index]

    def score_second(pair: tuple[int, int]) -> float:
        a, b = pair
        return -abs(a * b - 900)

    cases = (((16, 24, 32, 48, 64), score_first, "table"), ((12, 20, 28, 40, 56), score_second, "product"))
    for candidates, score, name in cases:
        got = _call(fn, score, candidates)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise AssertionError(f"return a pair of sizes, e.g. (24, 64), got {got!r}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s not in candidates for s in got) or got[0] == got[1]:
            raise AssertionError(f"return two different sizes taken from candidates {list(candidates)}, got {tuple(got)}")
        pairs = list(itertools.combinations(candidates, 2))
        best = max(pairs, key=score)
        got_pair = tuple(sorted(got))
        if score(got_pair) < score(best):
            worst = min(pairs, key=score)
            if got_pair == worst:
                raise AssertionError(f"{got_pair} has the lowest score; keep the pair with the highest (max, not min)")
            if name == "table" and got_pair == (32, 48):
                raise AssertionError("(32, 48) is a good pair but not the best: neighbouring sizes fail on the same "
                                     "images, so their average adds little. Score every pair "
                                     "(itertools.combinations(candidates, 2)) and keep the best")
            raise AssertionError(f"{got_pair} scores {score(got_pair):.2f}, but {best} scores {score(best):.2f}: "
                                 "score every pair of candidates (itertools.combinations) and keep the highest")
    _ok("your search finds the best pair, also where the tempting neighbouring pair is not it")


def _min_channels(objects: tuple[float, float], trained: tuple[float, float]) -> int:
    """Fewest scale channels whose images put every object size of ``objects`` inside ``trained``."""
    import math

    low, high = objects
    band_low, band_high = trained
    if band_high / band_low <= 1:
        raise ValueError("trained range must have low < high")
    # Each channel covers object sizes in a ratio band_high / band_low; the range needs its log-width in those.
    return max(1, math.ceil(math.log(high / low) / math.log(band_high / band_low) - 1e-9))


def check_channel_cover_function(fn: Callable[[tuple[float, float], tuple[float, float]], Sequence[float]]) -> None:
    """Check ``fn(objects, trained) -> scales``: the fewest channels that show every object at a trained size.

    Notebook 09, exercise 1. ``objects`` is the range of object sides in the stored image (pixels),
    ``trained`` the range of object sides (pixels) the network reads well; a channel at factor ``s``
    shows an object of side ``o`` at ``o * s`` pixels. Any answer is accepted that (1) covers: every
    object size in ``objects`` lands in ``trained`` in at least one channel, and (2) uses as few
    channels as possible. Several answers pass, since the channels may slide within the slack.

    Raises:
        AssertionError: with a hint for an uncovered size, too many channels, or a malformed answer.
    """
    cases = [((9.0, 60.0), (10.0, 17.5)), ((20.0, 35.0), (10.0, 17.5)), ((9.0, 14.0), (7.5, 26.0)),
             ((45.0, 60.0), (10.0, 17.5)), ((9.0, 60.0), (7.5, 26.0)), ((4.0, 200.0), (16.0, 32.0))]
    # And ranges no table of answers can anticipate (a private generator: the global state is untouched).
    import random

    draw = random.Random(9)
    for _ in range(4):
        low = round(draw.uniform(3, 40), 2)
        band_low = round(draw.uniform(5, 20), 2)
        cases.append(((low, round(low * draw.uniform(1.2, 12), 2)), (band_low, round(band_low * draw.uniform(1.3, 3), 2))))
    for objects, trained in cases:
        got = _call(fn, objects, trained)
        if isinstance(got, (str, bytes)) or not isinstance(got, Sequence) or not got:
            raise AssertionError(f"return a non-empty sequence of scale factors, e.g. (0.25, 0.5, 1.0); got {got!r}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in got):
            raise AssertionError(f"every scale factor must be a number > 0; got {tuple(got)}")
        scales = [float(v) for v in got]
        low, high = objects
        band_low, band_high = trained
        # A dense log-spaced grid over the object range, ends included.
        grid = [low * (high / low) ** (i / 400) for i in range(401)]
        tol = 1e-6
        for size in grid:
            if not any(band_low * (1 - tol) <= size * s <= band_high * (1 + tol) for s in scales):
                shown = ", ".join(f"{size * s:.1f} px" for s in scales)
                raise AssertionError(
                    f"objects {objects} px, trained {trained} px: an object of {size:.1f} px is shown at {shown}, never "
                    f"inside {trained}. Start from the largest object: the factor band_high / largest puts it at the top "
                    "of the band; each next channel multiplies the factor by band_high / band_low")
        needed = _min_channels(objects, trained)
        if len(scales) > needed:
            raise AssertionError(
                f"objects {objects} px, trained {trained} px: {len(scales)} channels cover it, but {needed} suffice. One "
                f"channel covers object sizes in a ratio of {band_high / band_low:.2f}; the range spans a ratio of "
                f"{high / low:.2f}, so ceil(log({high / low:.2f}) / log({band_high / band_low:.2f})) = {needed} channels")
    example = fn(*cases[0])
    _ok(f"your channels cover every object size with the fewest channels, in {len(cases)} cases "
        f"(9-60 px onto a 10-17.5 px band: {len(example)} channels, {', '.join(f'{s:.3g}' for s in example)})")


def check_winning_channel_function(fn: Callable[[Tensor], Tensor]) -> None:
    """Check ``fn(channel_logits) -> winners``: which channel decided each image under max pooling over scales.

    Notebook 09, exercise 2. ``channel_logits`` is ``(S, N, K)`` (``ScaleChannelNetwork.channel_logits``);
    the pooled logits are the maximum over ``S``, the prediction their argmax over ``K``, and the
    winner of image ``n`` the channel whose logit for that predicted class is the maximum. (Under
    max pooling that is also the channel holding image ``n``'s largest logit of all: both routes
    pass.) The made-up logits include images where the mean over channels would predict another
    class from another channel.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 64, 5, generator=generator)
    # Image 0: the maximum (class 0, channel 1) and the mean (class 3, best in channel 2) disagree.
    logits[:, 0] = torch.tensor([[1.0, 0.0, 0.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.9, 0.0]])
    predicted = logits.amax(dim=0).argmax(dim=1)
    expected = logits[:, torch.arange(logits.shape[1]), predicted].argmax(dim=0)
    got = _call(fn, logits.clone())
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"return a tensor of channel indices, one per image; got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"logits of shape (S, N, K) = {tuple(logits.shape)} need one index per image, shape "
                             f"{tuple(expected.shape)}; got {tuple(got.shape)}")
    got = got.long()
    if not torch.equal(got, expected):
        wrong = int((got != expected).nonzero()[0])
        mean_predicted = logits.mean(dim=0).argmax(dim=1)
        by_mean = logits[:, torch.arange(logits.shape[1]), mean_predicted].argmax(dim=0)
        if bool((got >= logits.shape[0]).any()) or torch.equal(got, predicted):
            hint = f"return channel indices (0 to {logits.shape[0] - 1}), not the predicted classes"
        elif torch.equal(got, by_mean):
            hint = "the prediction comes from the maximum over channels (logits.amax(0)), not the mean"
        else:
            hint = "predicted = logits.amax(0).argmax(1); then the argmax over channels of logits[:, n, predicted[n]]"
        raise AssertionError(f"image {wrong}: the winner is channel {int(expected[wrong])}, your function says "
                             f"{int(got[wrong])}; {hint}")
    _ok(f"your function names the deciding channel of all {logits.shape[1]} images")


def check_scaled_run_function(fn: Callable[[dict, int, int], dict]) -> None:
    """Check ``fn(fit_settings, world_size, per_rank_batch) -> fit_settings``: a recipe moved to more devices.

    Notebook 10, exercise 1. ``fit``'s ``batch_size`` is the global batch: with ``world_size``
    processes of ``per_rank_batch`` images each it is their product. The learning rate grows with
    the batch by the rule of the optimizer: linearly for SGD (Goyal et al. 2017, sec 2.1: k times the
    batch, k times the rate), with the square root for AdamW (Malladi et al. 2022, "On the SDEs and
    Scaling Rules for Adaptive Gradient Algorithms", the square-root scaling rule). ``fit``'s default
    optimizer is AdamW. Every other setting is kept, and the input is not modified.
    """
    import copy
    import math

    cases = [({"batch_size": 64, "lr": 4e-3, "epochs": 4, "optimizer": "adamw"}, 8, 32),
             ({"batch_size": 256, "lr": 0.1, "epochs": 90, "warmup_epochs": 5, "optimizer": "sgd"}, 32, 256),
             ({"batch_size": 128, "lr": 8e-3, "epochs": 5}, 1, 64),
             ({"batch_size": 128, "lr": 0.05, "epochs": 5, "optimizer": "sgd"}, 2, 32)]
    for settings, world_size, per_rank in cases:
        original = copy.deepcopy(settings)
        got = _call(fn, settings, world_size, per_rank)
        if settings != original:
            raise AssertionError("return a new dict and leave the recipe's settings as they were (copy them first)")
        if not isinstance(got, dict):
            raise AssertionError(f"return the fit settings as a dict, got {type(got).__name__}")
        batch = world_size * per_rank
        if got.get("batch_size") != batch:
            hint = (" batch_size is the global batch, per_rank_batch x world_size" if got.get("batch_size") == per_rank
                    else "")
            raise AssertionError(f"{world_size} processes x {per_rank} images: batch_size should be {batch}, got "
                                 f"{got.get('batch_size')!r}.{hint}")
        optimizer = original.get("optimizer", "adamw")
        k = batch / original["batch_size"]
        lr = original["lr"] * (k if optimizer == "sgd" else math.sqrt(k))
        if not isinstance(got.get("lr"), (int, float)) or not math.isclose(got["lr"], lr, rel_tol=1e-9):
            if isinstance(got.get("lr"), (int, float)) and math.isclose(got["lr"], original["lr"] * (math.sqrt(k) if optimizer == "sgd" else k)):
                hint = "you used the other optimizer's rule: linear for sgd, square root for adamw"
            elif "optimizer" not in original:
                hint = "no optimizer given means fit's default, adamw (square-root rule)"
            else:
                hint = "k = new batch / old batch; sgd: lr x k, adamw: lr x sqrt(k)"
            raise AssertionError(f"{optimizer}, batch {original['batch_size']} -> {batch}, lr {original['lr']:g}: expected "
                                 f"{lr:g}, got {got.get('lr')!r}; {hint}")
        for key, value in original.items():
            if key not in ("batch_size", "lr") and got.get(key) != value:
                raise AssertionError(f"{key} should stay {value!r}, got {got.get(key)!r}")
    _ok("the global batch and the learning rate scale together, by each optimizer's rule; everything else is kept")


def check_stage_memory_function(fn: Callable[[Any, Tensor], dict]) -> None:
    """Check ``fn(model, images) -> {stage name: bytes}``: what each residual stage keeps for backward.

    Notebook 10, exercise 2. The reference captures each stage's input with a forward hook, then
    counts ``tutorial_lib.speed.saved_activation_bytes(stage, input, loss=False)`` for each stage.
    """
    import torch

    from tutorial_lib.models import resnet18
    from tutorial_lib.speed import residual_stages, saved_activation_bytes

    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=4, stem="small").train()
    images = torch.rand(4, 3, 32, 32)
    inputs: dict[str, Tensor] = {}
    hooks = [stage.register_forward_pre_hook(lambda module, args, name=name: inputs.__setitem__(name, args[0]))
             for name, stage in residual_stages(model)]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    expected = {name: saved_activation_bytes(stage, inputs[name], loss=False) for name, stage in residual_stages(model)}
    got = _call(fn, model, images)
    if not isinstance(got, dict):
        raise AssertionError(f"return a dict {{stage name: bytes}}, got {type(got).__name__}")
    if sorted(got) != sorted(expected):
        raise AssertionError(f"one entry per residual stage, named as model.named_modules() names them: "
                             f"{sorted(expected)}; got {sorted(got)}")
    total = saved_activation_bytes(model, images)
    for name, value in expected.items():
        if got[name] != value:
            if got[name] == total:
                hint = "that is the whole model's count: run saved_activation_bytes on the stage, with the stage's input"
            elif got[name] * 4 == value or got[name] == value // 4:
                hint = "count bytes, not elements (float32: 4 bytes each)"
            else:
                hint = "capture each stage's input with a forward pre-hook, then saved_activation_bytes(stage, input, loss=False)"
            raise AssertionError(f"{name}: {value} bytes expected, got {got[name]}; {hint}")
    _ok(f"your counts match for all {len(expected)} stages ({sum(expected.values()) / 2**10:.0f} KiB in all at 32 px, batch 4)")
