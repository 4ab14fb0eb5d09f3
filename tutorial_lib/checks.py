"""Self-check helpers for the notebooks' exercises.

Each ``check_*`` function raises ``AssertionError`` with a friendly hint when the learner's answer is
wrong, and prints a short confirmation when it is right, so a check cell reads as one line.
"""

from __future__ import annotations


def _ok(message: str) -> None:
    """Print the confirmation line every passing check ends with."""
    print(f"Correct: {message}")


# --- 00 setup ---------------------------------------------------------------------------------


def check_batch_bytes(answer_mib: float, *, batch: int, channels: int, size: int, bytes_per_value: int) -> None:
    """Check a batch-memory estimate in MiB (2**20 bytes), to within rounding."""
    expected = batch * channels * size * size * bytes_per_value / 2**20
    if not isinstance(answer_mib, (int, float)):
        raise AssertionError(f"store a number in MiB, got {type(answer_mib).__name__}")
    if abs(answer_mib - expected * 2**20 / 1e6) < 1e-6 * expected:
        raise AssertionError("that is megabytes (1e6 bytes); divide by 2**20 for mebibytes")
    if abs(answer_mib - expected / 4) < 1e-9 * expected and bytes_per_value == 4:
        raise AssertionError("each float32 value takes 4 bytes: multiply by 4")
    if abs(answer_mib - expected) > 1e-6 * expected:
        raise AssertionError(f"not quite: count values (batch x channels x height x width), x bytes each, / 2**20")
    _ok(f"{expected:.2f} MiB")


# --- 01 convolution and pooling, 03 bottleneck blocks, 04 building ResNet-101 -----------------


def _call(fn, *args):
    """Call a learner's function, turning a crash into a hint that names the call."""
    if not callable(fn):
        raise AssertionError(f"pass your function itself (no parentheses), got {type(fn).__name__}")
    try:
        return fn(*args)
    except Exception as error:  # the learner's code: report what call failed, and why
        raise AssertionError(f"your function raised {type(error).__name__}: {error} for arguments {args}") from error


def check_output_size_function(fn) -> None:
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
                "a dilated kernel spans d*(k-1)+1 pixels" if d > 1 and got != expected else "count the +1 for the first position")
            raise AssertionError(
                f"size={size}, kernel_size={k}, stride={s}, padding={p}, dilation={d}: nn.Conv2d gives "
                f"{expected}, your function gives {got}; {hint}")
        cases += 1
    _ok(f"your formula matches nn.Conv2d on {cases} settings")


def check_receptive_field_function(fn) -> None:
    """Check ``fn([(kernel, stride), ...]) -> (receptive_field, jump)`` against :func:`tutorial_lib.layers.receptive_field`."""
    from torch import nn

    from tutorial_lib.layers import receptive_field

    stacks = [[(3, 1)], [(3, 1), (3, 1)], [(7, 2), (3, 2)], [(7, 2), (3, 2), (3, 1), (3, 2), (1, 1)],
              [(5, 1), (2, 2), (5, 1), (2, 2)], [(1, 2), (3, 1)]]
    for stack in stacks:
        last = receptive_field([nn.Conv2d(1, 1, k, s) for k, s in stack])[-1]
        got = _call(fn, stack)
        if tuple(got) != (last.size, last.jump):
            raise AssertionError(
                f"for layers {stack} expected (receptive field, jump) = {(last.size, last.jump)}, got {tuple(got)}; "
                "each layer adds (k - 1) * jump_so_far, then multiplies jump by its stride")
    _ok(f"your recurrence matches tutorial_lib.layers.receptive_field on {len(stacks)} stacks")


def check_conv_cost_function(fn) -> None:
    """Check ``fn(c_in, c_out, kernel_size, out_size, bias) -> (params, macs)`` against real layers."""
    import torch
    from torch import nn

    from tutorial_lib.cost import count_flops, count_parameters

    for c_in, c_out, k, stride, size, bias in [(3, 64, 7, 2, 224, False), (64, 64, 3, 1, 56, False),
                                               (256, 64, 1, 1, 56, True), (16, 8, 5, 2, 31, True)]:
        conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=bias)
        out_size = conv(torch.zeros(1, c_in, size, size)).shape[-1]
        expected = (count_parameters(conv), count_flops(conv, (c_in, size, size))["macs"])
        got = _call(fn, c_in, c_out, k, out_size, bias)
        if tuple(got) != expected:
            params, macs = tuple(got)
            hints = []
            if params == expected[0] + (c_out if not bias else -c_out):
                hints.append("the bias adds c_out parameters only when bias=True")
            if macs == 2 * expected[1]:
                hints.append("that is FLOPs; one MAC is a multiply *and* an add")
            raise AssertionError(
                f"Conv2d({c_in}, {c_out}, {k}, bias={bias}) with a {out_size}x{out_size} output: expected "
                f"(params, MACs) = {expected}, got {tuple(got)}. " + (" ".join(hints) or
                "params = c_out*c_in*k*k (+c_out), MACs = c_out*c_in*k*k per output pixel"))
    _ok("parameters and MACs match count_parameters and count_flops")


def check_bottleneck_params_function(fn) -> None:
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
            f"expected {expected:,} MACs, got {answer!r}; only conv1 changes: in v1.5 it produces all "
            f"{size}x{size} pixels, in v1 only the {(size + 1) // 2}x{(size + 1) // 2} it keeps")
    _ok(f"v1 saves {expected:,} MACs ({expected / macs['v1.5']:.1%} of this block)")


def check_depth_function(fn) -> None:
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


def check_small_resnet(model, *, max_params: int, max_macs: int, image_size: int, num_classes: int) -> None:
    """Check a scaled-down ResNet-101: same stages and blocks, within a parameter and MAC budget."""
    import torch

    from tutorial_lib.blocks import Bottleneck
    from tutorial_lib.cost import count_flops, count_parameters
    from tutorial_lib.models import ResNet

    if not isinstance(model, ResNet):
        raise AssertionError(f"build the model with tutorial_lib.models.resnet101(...), got {type(model).__name__}")
    if model.block is not Bottleneck or model.stage_blocks != (3, 4, 23, 3):
        raise AssertionError("keep the architecture a ResNet-101 (Bottleneck, [3, 4, 23, 3]); change width and stem only")
    params = count_parameters(model)
    macs = count_flops(model, image_size)["macs"]
    if params > max_params:
        raise AssertionError(f"{params:,} parameters > {max_params:,}: parameters grow with width squared; try a smaller width")
    if macs > max_macs:
        raise AssertionError(f"{macs / 1e6:,.0f} MMACs > {max_macs / 1e6:,.0f}: reduce the width, or check the stem")
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, model.in_channels, image_size, image_size))
    if out.shape != (2, num_classes):
        raise AssertionError(f"the model outputs {tuple(out.shape[1:])} per image; set num_classes={num_classes}")
    _ok(f"a ResNet-101 with {params:,} parameters and {macs / 1e6:,.1f} MMACs at {image_size} px")


def check_stage_shapes(answer: dict, *, model, image_size: int) -> None:
    """Check predicted ``{"layer1": (C, H, W), ...}`` for ``model`` at ``image_size`` (batch dimension left out)."""
    from tutorial_lib.models import stage_shapes

    shapes = stage_shapes(model, image_size)
    if not isinstance(answer, dict):
        raise AssertionError(f"store a dict like {{'layer1': (256, 56, 56), ...}}, got {type(answer).__name__}")
    for name in ("layer1", "layer2", "layer3", "layer4"):
        expected = shapes[name][1:]
        got = answer.get(name)
        if got is None or tuple(got) != expected:
            raise AssertionError(
                f"{name}: expected {expected}, got {got!r}; channels are width * 2**i * 4, and the "
                "resolution halves at layer2, layer3 and layer4 (ceil of odd sizes)")
    _ok(f"all four stage shapes at {image_size} px")
