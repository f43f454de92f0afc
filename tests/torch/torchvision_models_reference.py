"""torchvision's networks against lm.models (run by
tests/lua/torch_torchvision_models_spec.lua).

  torchvision_models_reference.py write DIR
      For each case of CASES (a torchvision constructor with its options),
      DIR/<case>.safetensors holds the model's state_dict, its batch norms
      randomised (see randomise), and DIR/<case>_io.safetensors an input
      "x", the evaluation output "y_eval", the upstream gradient "gy", the
      parameter gradients "grad.<name>" of sum(y_eval * gy) in evaluation
      mode, the same in float64 ("grad64.<name>") with float32 torch's
      relative error from them ("err32.<name>"); then one training-mode
      pass (dropout 0) on "x_train" (8 images twice as wide): its output "y_train", in float64 "y_train64" with
      torch's float32 error "err32.y_train", and the buffers after it
      ("after.<name>"; in float64 "after64.<name>", torch's float32 error
      "err32.after.<name>"). The input is the first of a seeded sequence whose
      evaluation pass keeps every activation's input at least MARGIN from
      its kinks (0 and 6 for ReLU6, -3 and 3 for Hardswish) in float64, stored as "margin": a
      gradient at a kink is a coin toss in float32, and one flipped mask
      moves every gradient below it. Gradients are compared in evaluation
      mode because training-mode batch norms over a few values per channel
      amplify rounding (torch's own float32 gradients then land up to 20 %
      from float64's through flipped masks); the batch norm's training
      backward is compared layer by layer in conv_layers_reference.py.
      DIR/<case>_keys.txt: "name shape" per line of the state_dict at the
      default size (torchvision's own constructor where the case names one).
      DIR/<name>_keys.txt: the same for each constructor of KEY_LISTS.
      Key lists come from models built without drawing their weights (names
      and shapes are all they need, and VGG's classifier alone is 120M
      draws). A case's `relu_after(model)` lists modules whose outputs go
      through a functional ReLU (DenseNet's last features): their margin
      counts too.
      DIR/convnext_configs.json, DIR/regnet_configs.json: see
      write_convnext_configs and write_regnet_configs.
  torchvision_models_reference.py check DIR CASE...
      for each CASE, loads Lumen's DIR/<case>_lumen.safetensors into the
      torchvision model with strict=True, runs it in evaluation mode on
      DIR/<case>_lumen_io.safetensors's "x" and compares with Lumen's "y".
      Prints "<case>: relative error E" per case (" above 1e-5" after it, or
      the error that stopped the case, "<case>: Error: ..."); exits 1 if any
      case failed. (One run for every case: each start imports torch.)
"""
import copy
import json
import sys
from functools import partial
from unittest import mock

import torch
import torchvision
from torch import nn
from torchvision.models import efficientnet as tv_efficientnet

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import load, save  # noqa: E402



def first_conv_stride_1(path):
    """The 'cifar' stem of a family: the first convolution (at `path`, a
    function of the model) at stride 1, the rest of the model torchvision's."""
    def adapt(model):
        path(model).stride = (1, 1)
    return adapt


MOBILE_STEM = first_conv_stride_1(lambda m: m.features[0][0])


def dense_cifar_stem(model):
    """lm.models.densenet's 'cifar' stem: a 3x3 stride-1 first convolution
    and no max pooling."""
    conv0 = model.features.conv0
    model.features.conv0 = nn.Conv2d(3, conv0.out_channels, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.features.conv0.weight)
    model.features.pool0 = nn.Identity()


def undrawn(make, *args, **kwargs):
    """make(*args, **kwargs) with torch.nn.init's draws and fills skipped
    (the tensors keep whatever memory they got): for names and shapes."""
    skip = [mock.patch.object(torch.nn.init, f, lambda t, *_, **__: t)
            for f in ("normal_", "uniform_", "kaiming_normal_", "kaiming_uniform_", "constant_", "trunc_normal_")]
    for p in skip:
        p.start()
    try:
        return make(*args, **kwargs)
    finally:
        for p in skip:
            p.stop()


VGG_CONFIGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def vgg(arch, width=64, **options):
    """torchvision.models.<arch>(**options) with lm.models.vgg*'s `width`
    (64: torchvision's): every convolution's channels times width / 64 and
    the classifier's hidden units 64 x width instead of 4096, in
    torchvision's own modules (torchvision.models.vgg.VGG and make_layers),
    initialised as torchvision initialises a VGG."""
    if width == 64:
        return getattr(torchvision.models, arch)(**options)
    config = torchvision.models.vgg.cfgs[VGG_CONFIGS[arch.replace("_bn", "")]]
    features = torchvision.models.vgg.make_layers([v if v == "M" else v // 64 * width for v in config],
                                                  batch_norm=arch.endswith("_bn"))
    # (VGG's own classifier is 512 * 7 * 7 -> 4096 -> 4096 whatever the features: replaced)
    model = undrawn(torchvision.models.vgg.VGG, features, **options)
    hidden, dropout = 64 * width, options.get("dropout", 0.5)
    model.classifier = nn.Sequential(nn.Linear(8 * width * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(dropout),
                                     nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
                                     nn.Linear(hidden, options.get("num_classes", 1000)))
    for m in model.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return model


def convnext_cifar_stem(model):
    """Lumen's 'cifar' ConvNeXt stem: a 2x2 stride-2 patchify convolution in
    place of the 4x4 stride-4 one, initialised as torchvision's."""
    old = model.features[0][0]
    stem = nn.Conv2d(old.in_channels, old.out_channels, 2, stride=2)
    nn.init.trunc_normal_(stem.weight, std=0.02)
    nn.init.zeros_(stem.bias)
    model.features[0][0] = stem


def convnext(*stages):
    """torchvision's ConvNeXt class on Lumen's block_setting, a list of
    (channels, num_layers): each stage downsamples to the next's channels."""
    def make(**options):
        configs = [torchvision.models.convnext.CNBlockConfig(c, stages[i + 1][0] if i + 1 < len(stages) else None, n)
                   for i, (c, n) in enumerate(stages)]
        return torchvision.models.convnext.ConvNeXt(configs, **options)
    return make


def regnet(stem_width, **params):
    """torchvision's RegNet class on BlockParams.from_init_params(**params)
    with a stem of stem_width channels."""
    def make(**options):
        block_params = torchvision.models.regnet.BlockParams.from_init_params(**params)
        return torchvision.models.regnet.RegNet(block_params, stem_width=stem_width, **options)
    return make


def case(make, options, size, adapt=None, quiet=None, keys=None, relu_after=None):
    """make(**options) is the compared model on [2, 3, size, size] inputs;
    adapt(model) changes torchvision's model to Lumen's variant (a stem);
    quiet: the options that turn its random layers off for the training
    pass (dropout, stochastic depth); keys() the model whose state_dict
    names are listed (make() when not given; False: none, the Lua twin
    compares no names); relu_after(model): the modules whose outputs go
    through a functional ReLU (which no module hook sees)."""
    return {"make": make, "options": options, "size": size, "adapt": adapt,
            "quiet": {"dropout": 0.0} if quiet is None else quiet, "keys": make if keys is None else keys,
            "relu_after": relu_after}


CONVNEXT_QUIET = {"stochastic_depth_prob": 0.0}


class NarrowResNet(torchvision.models.resnet.ResNet):
    """torchvision's ResNet with `width` channels in its first stage (64 in
    torchvision's), built by torchvision's own _make_layer and initialised
    as its constructor does: lm.models.resnet50{width = ...}'s twin, small
    enough to compare in the test suite."""

    def __init__(self, layers, width, num_classes, groups=1, width_per_group=64,
                 replace_stride_with_dilation=(False, False, False)):
        nn.Module.__init__(self)
        block = torchvision.models.resnet.Bottleneck
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, groups, width_per_group
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        for i in range(1, 4):
            setattr(self, f"layer{i + 1}", self._make_layer(block, width << i, layers[i], stride=2,
                                                            dilate=replace_stride_with_dilation[i - 1]))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet_cifar_stem(model):
    """Lumen's 'cifar' stem: a 3x3 stride-1 first convolution, no max pooling."""
    model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()


def efficientnet(arch, dropout, norm_layer=None):
    """torchvision's EfficientNet `arch` (its dropout and batch norm given)
    with Lumen's width_mult and depth_mult options, which replace the
    variant's (torchvision's constructors fix them): B0-B7 through
    torchvision's own configuration at that width and depth, V2 (whose
    stages torchvision never scales) with each stage's channels rounded and
    blocks counted by torchvision's rules for B0-B7."""
    def make(width_mult, depth_mult, dropout=dropout, **options):
        if arch.startswith("efficientnet_b"):
            setting, last = tv_efficientnet._efficientnet_conf(arch, width_mult=width_mult, depth_mult=depth_mult)
        else:
            setting, last = tv_efficientnet._efficientnet_conf(arch)
            for stage in setting:
                stage.input_channels = stage.adjust_channels(stage.input_channels, width_mult)
                stage.out_channels = stage.adjust_channels(stage.out_channels, width_mult)
                stage.num_layers = tv_efficientnet.MBConvConfig.adjust_depth(stage.num_layers, depth_mult)
        return tv_efficientnet.EfficientNet(setting, dropout, last_channel=last, norm_layer=norm_layer, **options)
    return make


EFFICIENTNET_QUIET = {"dropout": 0.0, "stochastic_depth_prob": 0.0}
BN_B5 = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)  # torchvision's B5-B7
BN_V2 = partial(nn.BatchNorm2d, eps=1e-3)


def dense_relu(model):
    """DenseNet's forward ends in F.relu(features(x))."""
    return [model.features]


# name: the case (see `case`); the state_dict keys are listed at keys()'s defaults
CASES = {
    "mobilenet_v2": case(torchvision.models.mobilenet_v2, {"num_classes": 10, "width_mult": 0.5}, 32),
    "mobilenet_v2_w075_cifar": case(torchvision.models.mobilenet_v2, {"num_classes": 7, "width_mult": 0.75}, 16,
                                    MOBILE_STEM),
    "mobilenet_v3_small": case(torchvision.models.mobilenet_v3_small, {"num_classes": 10, "width_mult": 0.75}, 32),
    "mobilenet_v3_large_cifar": case(torchvision.models.mobilenet_v3_large, {"num_classes": 5, "width_mult": 0.5},
                                     16, MOBILE_STEM),
    "resnet50": case(NarrowResNet, {"layers": [2, 1, 1, 1], "width": 8, "num_classes": 10}, 32, quiet={},
                     keys=torchvision.models.resnet50),
    "resnext50_32x4d_dilated_cifar": case(NarrowResNet, {"layers": [1, 1, 2, 1], "width": 8, "num_classes": 6,
                                                         "groups": 4, "width_per_group": 16,
                                                         "replace_stride_with_dilation": [False, True, True]},
                                          16, resnet_cifar_stem, quiet={}, keys=torchvision.models.resnext50_32x4d),
    "wide_resnet50_2": case(NarrowResNet, {"layers": [1, 1, 1, 1], "width": 8, "num_classes": 10,
                                           "width_per_group": 128}, 32, quiet={},
                            keys=torchvision.models.wide_resnet50_2),
    "efficientnet_b0": case(efficientnet("efficientnet_b0", 0.2),
                            {"num_classes": 10, "width_mult": 0.25, "depth_mult": 0.5}, 32,
                            quiet=EFFICIENTNET_QUIET, keys=torchvision.models.efficientnet_b0),
    # B5's batch norms (eps 1e-3, momentum 0.01) and dropout 0.4
    "efficientnet_b5_cifar": case(efficientnet("efficientnet_b5", 0.4, BN_B5),
                                  {"num_classes": 5, "width_mult": 0.25, "depth_mult": 0.3}, 16, MOBILE_STEM,
                                  quiet=EFFICIENTNET_QUIET, keys=False),
    "efficientnet_v2_s": case(efficientnet("efficientnet_v2_s", 0.2, BN_V2),
                              {"num_classes": 10, "width_mult": 0.25, "depth_mult": 0.25}, 32,
                              quiet=EFFICIENTNET_QUIET, keys=torchvision.models.efficientnet_v2_s),
    "vgg11": case(lambda **o: vgg("vgg11", **o), {"num_classes": 10, "width": 4}, 32),
    "vgg16_bn": case(lambda **o: vgg("vgg16_bn", **o), {"num_classes": 7, "width": 4}, 48),
    "densenet": case(torchvision.models.DenseNet,
                     {"growth_rate": 8, "block_config": (2, 2), "num_init_features": 16, "num_classes": 10}, 32,
                     quiet={}, relu_after=dense_relu),
    "densenet_cifar": case(torchvision.models.DenseNet,
                           {"growth_rate": 6, "block_config": (1, 2, 1), "num_init_features": 8, "bn_size": 2,
                            "drop_rate": 0.2, "num_classes": 5}, 16, dense_cifar_stem, {"drop_rate": 0.0},
                           relu_after=dense_relu),
    # convnext_tiny's design at 8 and 16 channels, one block a stage; keys: convnext_tiny's
    "convnext": case(convnext((8, 1), (16, 1)), {"num_classes": 10, "stochastic_depth_prob": 0.1}, 32,
                     quiet=CONVNEXT_QUIET, keys=torchvision.models.convnext_tiny),
    "convnext_cifar": case(convnext((8, 1), (16, 1), (24, 1)), {"num_classes": 7}, 16, convnext_cifar_stem,
                           quiet=CONVNEXT_QUIET),
    # RegNetY: three stages of one block (8, 16, 32 channels) with squeeze and excitation; keys: regnet_y_400mf's
    "regnet_y": case(regnet(8, depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25), {"num_classes": 10},
                     32, quiet={}, keys=torchvision.models.regnet_y_400mf),
    # RegNetX: stages of 1 and 3 blocks (8, 16 channels), half-width bottlenecks in groups of 4 channels
    "regnet_x_cifar": case(regnet(8, depth=4, w_0=8, w_a=4.0, w_m=2.0, group_width=4, bottleneck_multiplier=0.5),
                           {"num_classes": 5}, 16, first_conv_stride_1(lambda m: m.stem[0]), quiet={},
                           keys=torchvision.models.regnet_x_400mf),
}
# the constructors whose sizes no compared case reaches (their blocks per
# stage, groups, widths, depth and width multipliers), listed by name
MORE_KEY_LISTS = ("resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2",
                  "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
                  "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_m", "efficientnet_v2_l")
# more state_dict key lists at torchvision's defaults (name: constructor)
KEY_LISTS = {**{a + bn: getattr(torchvision.models, a + bn) for a in VGG_CONFIGS for bn in ("", "_bn")},
             **{a: getattr(torchvision.models, a) for a in ("densenet121", "densenet161", "densenet169",
                                                            "densenet201")},
             **{a: getattr(torchvision.models, a) for a in MORE_KEY_LISTS}}
MARGIN = 2e-6
# the points where each activation's derivative jumps
KINKS = {nn.ReLU6: (0.0, 6.0), nn.ReLU: (0.0,), nn.Hardswish: (-3.0, 3.0), nn.Hardsigmoid: (-3.0, 3.0)}


def kink_margin(model64, x64, relu_after=None):
    """The closest any activation input comes to a kink in an evaluation
    pass of a copy of the float64 model (relu_after: see case)."""
    probe = copy.deepcopy(model64).eval()
    closest = [float("inf")]

    def near(v, kinks):
        for k in kinks:
            closest[0] = min(closest[0], float((v.detach() - k).abs().min()))

    def hook(module, inputs, _):
        near(inputs[0], KINKS[type(module)])

    for m in probe.modules():
        if type(m) in KINKS:
            m.inplace = False  # (the hook must see the input, not the output written over it)
            m.register_forward_hook(hook)
    for m in relu_after(probe) if relu_after else []:
        m.register_forward_hook(lambda _, __, out: near(out, (0.0,)))
    with torch.no_grad():
        probe(x64)
    return closest[0]


def pick_input(exact, size, relu_after):
    generator = torch.Generator().manual_seed(5)
    for _ in range(100):
        x = torch.randn(2, 3, size, size, generator=generator)
        margin = kink_margin(exact, x.double(), relu_after)
        if margin >= MARGIN:
            return x, margin
    raise RuntimeError("no input in 100 keeps its activations MARGIN from their kinks")


def build(name, quiet=False):
    c = CASES[name]
    model = c["make"](**{**c["options"], **(c["quiet"] if quiet else {})})
    if c["adapt"]:
        c["adapt"](model)
    return model


def randomise(model):
    """Norms away from the identity (torch's init would make evaluation a
    plain convolution stack): weights U(0.5, 1.5), biases N(0, 0.1), batch
    norms' running means N(0, 0.1) and running variances U(0.5, 1.5);
    ConvNeXt's layer scales U(0.5, 1.5) (their 1e-6 would hide each block
    behind its residual)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):  # (ConvNeXt's LayerNorm2d is a LayerNorm)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, torchvision.models.convnext.CNBlock):
                m.layer_scale.uniform_(0.5, 1.5)


def write_case(folder, name):
    size = CASES[name]["size"]
    torch.manual_seed(11)
    model = build(name, quiet=True)
    randomise(model)
    save(f"{folder}/{name}.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()})
    model.eval()
    exact = copy.deepcopy(model).double()
    x, margin = pick_input(exact, size, CASES[name]["relu_after"])
    io = {"x": x, "margin": torch.tensor(margin)}
    y = model(x)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    io["y_eval"], io["gy"] = y.detach(), gy
    (exact(x.double()) * gy.double()).sum().backward()
    for (k, p), (_, p64) in zip(model.named_parameters(), exact.named_parameters()):
        io["grad." + k] = p.grad.clone()
        io["grad64." + k] = p64.grad.clone()
        io["err32." + k] = (p.grad.double() - p64.grad).abs().max() / p64.grad.abs().max()
    model.train()
    exact.train()
    # batch statistics want many values per channel: 8 inputs twice as wide
    io["x_train"] = x_train = torch.randn(8, 3, 2 * size, 2 * size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        io["y_train"] = model(x_train)
        y64 = exact(x_train.double())
    io["err32.y_train"] = (io["y_train"].double() - y64).abs().max() / y64.abs().max()
    io["y_train64"] = y64.float()
    for (k, b), (_, b64) in zip(model.named_buffers(), exact.named_buffers()):
        io["after." + k] = b.clone()
        if b.is_floating_point():
            io["after64." + k] = b64.float()
            io["err32.after." + k] = (b.double() - b64).abs().max() / b64.abs().max()
    save(f"{folder}/{name}_io.safetensors", io)
    if CASES[name]["keys"]:
        write_keys(folder, name, CASES[name]["keys"])


def write_keys(folder, name, make):
    with open(f"{folder}/{name}_keys.txt", "w") as f:
        for k, v in undrawn(make).state_dict().items():
            f.write(f"{k} {'x'.join(map(str, v.shape)) or 'scalar'}\n")


def check(folder, name):
    """The relative error of the torchvision model holding Lumen's file of
    case `name` from Lumen's output."""
    state = {k: v for k, (_, v) in load(f"{folder}/{name}_lumen.safetensors").items()}
    model = build(name).eval()
    model.load_state_dict(state, strict=True)
    io = {k: v for k, (_, v) in load(f"{folder}/{name}_lumen_io.safetensors").items()}
    with torch.no_grad():
        got = model(io["x"])
    return float((got - io["y"]).abs().max() / io["y"].abs().max())


def check_all(folder, names):
    failed = False
    for name in names:
        try:
            err = check(folder, name)
            print(f"{name}: relative error {err:.3g}{'' if err <= 1e-5 else ' above 1e-5'}")
            failed = failed or err > 1e-5
        except Exception as e:  # (reported, and the other cases still checked)
            print(f"{name}: {type(e).__name__}: {' '.join(str(e).split())}")
            failed = True
    sys.exit(1 if failed else 0)


def write_convnext_configs(folder):
    """DIR/convnext_configs.json: each ConvNeXt constructor's block_setting
    (input_channels, out_channels (0 for None), num_layers) and stochastic
    depth, caught on their way to the model, which is never built."""
    configs = {}
    build_model = torchvision.models.convnext._convnext
    torchvision.models.convnext._convnext = lambda setting, p, weights, progress, **_: (setting, p)
    try:
        for arch in ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"):
            setting, p = getattr(torchvision.models.convnext, arch)()
            configs[arch] = {"stochastic_depth_prob": p, "block_setting": [
                [c.input_channels, c.out_channels or 0, c.num_layers] for c in setting]}
    finally:
        torchvision.models.convnext._convnext = build_model
    with open(f"{folder}/convnext_configs.json", "w") as f:
        json.dump(configs, f)


def write_regnet_configs(folder):
    """DIR/regnet_configs.json: each named RegNet's stages (depths, widths,
    group widths, bottleneck multipliers) and se_ratio, caught on their way
    to the model, which is never built."""
    configs = {}
    build_model = torchvision.models.regnet._regnet
    torchvision.models.regnet._regnet = lambda params, weights, progress, **_: params
    try:
        for arch in torchvision.models.regnet.__all__:
            if arch.startswith("regnet_"):
                p = getattr(torchvision.models.regnet, arch)()
                configs[arch] = {"depths": p.depths, "widths": p.widths, "group_widths": p.group_widths,
                                 "bottleneck_multipliers": p.bottleneck_multipliers, "strides": p.strides,
                                 "se_ratio": p.se_ratio or 0}
    finally:
        torchvision.models.regnet._regnet = build_model
    # where torch's float32 widths differ from float64's (200 x 2.3 rounds to
    # 464 in float32, 456 in float64)
    params = {"depth": 19, "w_0": 200, "w_a": 27.98, "w_m": 2.3, "group_width": 8, "bottleneck_multiplier": 1.0}
    p = torchvision.models.regnet.BlockParams.from_init_params(**params)
    float32 = {"params": params, "depths": p.depths, "widths": p.widths, "group_widths": p.group_widths}
    with open(f"{folder}/regnet_configs.json", "w") as f:
        json.dump({"presets": configs, "float32": float32}, f)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        for case in CASES:
            write_case(sys.argv[2], case)
        write_convnext_configs(sys.argv[2])
        write_regnet_configs(sys.argv[2])
        for name, make in KEY_LISTS.items():
            write_keys(sys.argv[2], name, make)
    else:
        check_all(sys.argv[2], sys.argv[3:])
