"""Independent re-statements of the reference networks, for the faithfulness tests.

State dicts are generated here in the key layout the reference code saves (torchvision,
torchvggish, zjsong/SACL main.py, zjsong/SSPL main.py), from explicit key lists rather than
from avsdk's modules, and the forward passes are written functionally (F.conv2d, ...)
following the reference code step by step. Nothing here imports avsdk.models.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Weights:
    """Seeded random tensors in a given layout."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}

    def randn(self, *shape, std=1.0):
        return torch.randn(*shape, generator=self.g) * std

    def conv(self, name, out_ch, in_ch, k, bias=True):
        self.sd[name + ".weight"] = self.randn(out_ch, in_ch, k, k, std=math.sqrt(2.0 / (in_ch * k * k)))
        if bias:
            self.sd[name + ".bias"] = self.randn(out_ch, std=0.05)

    def convt(self, name, in_ch, out_ch, k, bias=False):
        self.sd[name + ".weight"] = self.randn(in_ch, out_ch, k, k, std=math.sqrt(1.0 / (in_ch * k * k)))
        if bias:
            self.sd[name + ".bias"] = self.randn(out_ch, std=0.05)

    def linear(self, name, out_dim, in_dim, bias=True):
        self.sd[name + ".weight"] = self.randn(out_dim, in_dim, std=math.sqrt(2.0 / in_dim))
        if bias:
            self.sd[name + ".bias"] = self.randn(out_dim, std=0.05)

    def bn(self, name, channels, affine=True):
        if affine:
            self.sd[name + ".weight"] = 1 + self.randn(channels, std=0.1)
            self.sd[name + ".bias"] = self.randn(channels, std=0.1)
        self.sd[name + ".running_mean"] = self.randn(channels, std=0.1)
        self.sd[name + ".running_var"] = 0.5 + torch.rand(channels, generator=self.g)
        self.sd[name + ".num_batches_tracked"] = torch.tensor(7)

    def rate(self, name, channels, low, high):
        self.sd[name] = low + (high - low) * torch.rand(1, channels, 1, 1, generator=self.g)


def _bn(sd, x, name, training=False, eps=1e-5):
    weight, bias = sd.get(name + ".weight"), sd.get(name + ".bias")
    return F.batch_norm(x, sd[name + ".running_mean"].clone(), sd[name + ".running_var"].clone(),
                        weight, bias, training, 0.1, eps)


# -- ResNet-18 (torchvision keys; SACL sets layer4's stride to 1) ------------------------
def resnet18_state(seed=0):
    w = Weights(seed)
    w.conv("conv1", 64, 3, 7, bias=False)
    w.bn("bn1", 64)
    in_ch = 64
    for layer, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            name, cin = f"layer{layer}.{block}", (in_ch if block == 0 else width)
            w.conv(name + ".conv1", width, cin, 3, bias=False)
            w.bn(name + ".bn1", width)
            w.conv(name + ".conv2", width, width, 3, bias=False)
            w.bn(name + ".bn2", width)
            if block == 0 and layer > 1:
                w.conv(name + ".downsample.0", width, cin, 1, bias=False)
                w.bn(name + ".downsample.1", width)
        in_ch = width
    w.linear("fc", 1000, 512)
    return w.sd


def resnet18_forward(sd, x, layer4_stride=1):
    x = F.relu(_bn(sd, F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer, stride in zip(range(1, 5), (1, 2, 2, layer4_stride)):
        for block in range(2):
            name, s = f"layer{layer}.{block}", (stride if block == 0 else 1)
            out = F.relu(_bn(sd, F.conv2d(x, sd[name + ".conv1.weight"], stride=s, padding=1), name + ".bn1"))
            out = _bn(sd, F.conv2d(out, sd[name + ".conv2.weight"], padding=1), name + ".bn2")
            if name + ".downsample.0.weight" in sd:
                x = _bn(sd, F.conv2d(x, sd[name + ".downsample.0.weight"], stride=s), name + ".downsample.1")
            x = F.relu(out + x)
    return x


# -- VGG16 features[0:29] (torchvision keys) ---------------------------------------------
VGG16_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
               (12, 256, 256), (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512),
               (24, 512, 512), (26, 512, 512), (28, 512, 512))
VGG16_POOL_AFTER = (2, 7, 14, 21)


def vgg16_state(seed=0, prefix="features."):
    w = Weights(seed)
    for index, cin, cout in VGG16_CONVS:
        w.conv(f"{prefix}{index}", cout, cin, 3)
    return w.sd


def vgg16_forward(sd, x, prefix="features."):
    for index, _, _ in VGG16_CONVS:
        x = F.conv2d(x, sd[f"{prefix}{index}.weight"], sd[f"{prefix}{index}.bias"], padding=1)
        if index != 28:
            x = F.relu(x)
        if index in VGG16_POOL_AFTER:
            x = F.max_pool2d(x, 2, 2)
    return x


# -- VGGish + head (torchvggish keys + the reference's fc) --------------------------------
VGGISH_CONVS = ((0, 1, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512), (13, 512, 512))
VGGISH_POOL_AFTER = (0, 3, 8, 13)


def vggish_state(seed=0, head=True, prefix=""):
    w = Weights(seed)
    for index, cin, cout in VGGISH_CONVS:
        w.conv(f"{prefix}features.{index}", cout, cin, 3)
    for index, (out_dim, in_dim) in zip((0, 2, 4), ((4096, 12288), (4096, 4096), (128, 4096))):
        w.linear(f"{prefix}embeddings.{index}", out_dim, in_dim)
    if head:
        w.linear(f"{prefix}fc.0", 512, 128)
        w.linear(f"{prefix}fc.2", 512, 512)
    return w.sd


def vggish_forward(sd, x):
    """[N, 1, 96, 64] -> (emb [N, 128], a [N, 512]) as torchvggish + the reference head."""
    for index, _, _ in VGGISH_CONVS:
        x = F.relu(F.conv2d(x, sd[f"features.{index}.weight"], sd[f"features.{index}.bias"], padding=1))
        if index in VGGISH_POOL_AFTER:
            x = F.max_pool2d(x, 2, 2)
    x = torch.transpose(x, 1, 3)
    x = torch.transpose(x, 1, 2).contiguous().view(x.size(0), -1)
    for index in (0, 2, 4):
        x = F.relu(F.linear(x, sd[f"embeddings.{index}.weight"], sd[f"embeddings.{index}.bias"]))
    a = F.linear(F.relu(F.linear(x, sd["fc.0.weight"], sd["fc.0.bias"])), sd["fc.2.weight"], sd["fc.2.bias"])
    return x, a


def clip_audio(sd, spect):
    """Reference NetWrapper step 1: per clip, mean over its examples; emb L2-normalised."""
    orig, trans = [], []
    for i in range(spect.size(0)):
        e, a = vggish_forward(sd, spect[i])
        orig.append(e.mean(dim=0))
        trans.append(a.mean(dim=0))
    return F.normalize(torch.stack(orig), p=2, dim=1), torch.stack(trans)


def att_map_weight(vis, aud):
    """Reference NetWrapper.att_map_weight -> (pooled f, raw map S, attention A)."""
    B, C, H, W = vis.size()
    v = F.normalize(vis, p=2, dim=1).view(B, C, H * W).permute(0, 2, 1)
    a = F.normalize(aud, p=2, dim=1).unsqueeze(2)
    orig = torch.matmul(v, a)
    att = orig.view(B, H * W)
    att = (att - att.min(dim=1, keepdim=True).values) / (
        att.max(dim=1, keepdim=True).values - att.min(dim=1, keepdim=True).values + 1e-10)
    f = torch.matmul(vis.view(B, C, -1), att.unsqueeze(2)).view(B, C)
    return f, orig.view(B, H, W), att.view(B, H, W)


# -- SSPL PCM (pc_net.py, dim_audio 128, 512 channels) ------------------------------------
def pcm_state(seed=0, cycles=4, prefix=""):
    w = Weights(seed)
    p = prefix
    w.conv(p + "PredProcess.0", 128, 512, 1, bias=True)
    w.conv(p + "PredProcess.1.conv2d", 512, 512, 3, bias=False)
    w.conv(p + "PredProcess.2.conv2d", 512, 512, 3, bias=False)
    w.convt(p + "ErrorProcess.0", 128, 512, 1)
    w.convt(p + "ErrorProcess.1", 512, 512, 3)
    w.convt(p + "ErrorProcess.2.convtrans2d", 512, 512, 3)
    w.convt(p + "ErrorProcess.3", 512, 512, 1, bias=True)
    for i in range(3):  # some negative rates, to exercise the ReLU that keeps them >= 0
        w.rate(f"{p}b0.{i}", 512, -0.2, 1.0)
    for i in range(3):
        w.rate(f"{p}a0.{i}", 512, -0.2, 1.5)
    for i in range(2):
        w.bn(f"{p}BNPred.{i}", 512)
    for i in range(3):
        w.bn(f"{p}BNError.{i}", 512)
    for i in range(2 * cycles):
        w.bn(f"{p}BNPred_step.{i}", 512)
    for i in range(3 * cycles):
        w.bn(f"{p}BNError_step.{i}", 512)
    return w.sd


def pcm_forward(sd, vis_fm, audio_feature_orig, cycs_in=4, training=False):
    """pc_net.PCNet.forward, written with functional ops and the same list bookkeeping."""
    num_layers = 4

    def bn(x, name):
        return _bn(sd, x, name, training)

    def pred(i, x):
        if i == 0:
            return F.conv2d(x, sd["PredProcess.0.weight"], sd["PredProcess.0.bias"])
        return F.max_pool2d(F.conv2d(x, sd[f"PredProcess.{i}.conv2d.weight"], padding=1), 2, 2)

    def error(i, x):
        if i == 0:
            return F.conv_transpose2d(x, sd["ErrorProcess.0.weight"])
        if i == 1:
            return F.conv_transpose2d(x, sd["ErrorProcess.1.weight"], stride=2)
        if i == 2:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            return F.conv_transpose2d(x, sd["ErrorProcess.2.convtrans2d.weight"], padding=1)
        return F.conv_transpose2d(x, sd["ErrorProcess.3.weight"], sd["ErrorProcess.3.bias"])

    def a0(i):
        return F.relu(sd[f"a0.{i}"])

    def b0(i):
        return F.relu(sd[f"b0.{i}"])

    def audio_error(top):
        p = F.gelu(pred(0, top))
        p = F.adaptive_avg_pool2d(p, 1).view(p.size(0), -1)
        return (audio_feature_orig - p).unsqueeze(-1).unsqueeze(-1).expand(-1, -1, 3, 3)

    r_pred = [vis_fm]
    for i in range(num_layers - 2, 0, -1):
        r_pred = [F.gelu(bn(pred(i, r_pred[0]), f"BNPred.{i - 1}"))] + r_pred
    r_update = [F.gelu(bn(r_pred[0] + a0(0) * error(0, audio_error(r_pred[0])), "BNError.0"))]
    for i in range(1, num_layers - 1):
        e = r_update[i - 1] - r_pred[i - 1]
        r_update.append(F.gelu(bn(r_pred[i] + a0(i) * error(i, e), f"BNError.{i}")))
    for t in range(cycs_in):
        r_update[-1] = F.gelu((1 - b0(2)) * r_update[-1] + b0(2) * r_pred[-1])
        for i in range(num_layers - 2, 0, -1):
            r_pred[i - 1] = pred(i, r_update[i])
            mixed = (1 - b0(i - 1)) * r_update[i - 1] + b0(i - 1) * r_pred[i - 1]
            r_update[i - 1] = F.gelu(bn(mixed, f"BNPred_step.{(num_layers - 2) * t + i - 1}"))
        e_audio = audio_error(r_update[0])
        r_update[0] = F.gelu(bn(r_update[0] + a0(0) * error(0, e_audio),
                                f"BNError_step.{(num_layers - 1) * t}"))
        for i in range(1, num_layers - 1):
            e = r_update[i - 1] - r_pred[i - 1]
            r_update[i] = F.gelu(bn(r_update[i] + a0(i) * error(i, e),
                                    f"BNError_step.{(num_layers - 1) * t + i}"))
    return error(3, r_update[-1])


# -- SSPL SimSiam head (simsiam_head.py) ---------------------------------------------------
def simsiam_state(seed=0, prefix=""):
    w = Weights(seed)
    p = prefix
    w.linear(p + "projector.layer1.0", 2048, 512, bias=False)
    w.bn(p + "projector.layer1.1", 2048)
    w.linear(p + "projector.layer2.0", 2048, 2048, bias=False)
    w.bn(p + "projector.layer2.1", 2048)
    w.linear(p + "projector.layer3.0", 2048, 2048, bias=False)
    w.bn(p + "projector.layer3.1", 2048, affine=False)
    w.linear(p + "predictor.layer1.0", 512, 2048, bias=False)
    w.bn(p + "predictor.layer1.1", 512)
    w.linear(p + "predictor.layer2", 2048, 512)
    return w.sd


def simsiam_forward(sd, x1, x2, training=False):
    def fc_bn(x, name, relu=True):
        x = _bn(sd, F.linear(x, sd[name + ".0.weight"]), name + ".1", training)
        return F.relu(x) if relu else x

    def project(x):
        x = fc_bn(x, "projector.layer1")
        x = fc_bn(x, "projector.layer2")
        return fc_bn(x, "projector.layer3", relu=False)

    def predict(z):
        h = fc_bn(z, "predictor.layer1")
        return F.linear(h, sd["predictor.layer2.weight"], sd["predictor.layer2.bias"])

    z1, z2 = project(x1), project(x2)
    return predict(z1), predict(z2), z1, z2
