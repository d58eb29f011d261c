"""ModelConfig: which trunk, which audio encoder, which extras; one frozen dataclass.

``ModelConfig.edge()`` is the edge model the main job trains (SoundNet-8 ears, an
ImageNet-initialised projection); the plain ``ModelConfig()`` is its log-mel sibling with a
small CNN trained from scratch. ``ModelConfig.sacl()`` and ``ModelConfig.sspl()`` are the two
published models.
"""
from __future__ import annotations

from dataclasses import dataclass

from avsdk.errors import bad_input

VISUAL_TRUNKS = ("efficientnet_lite0", "resnet18", "vgg16")
AUDIO_ENCODERS = ("small_cnn", "vggish", "soundnet")
MAP_WEIGHTS = ("none", "visual_norm")  # ModelConfig.map_weight


@dataclass(frozen=True)
class ModelConfig:
    """What to build. The defaults: EfficientNet-Lite0 and the small log-mel CNN (see edge()).

    Attributes:
        visual: visual trunk; "efficientnet_lite0" (edge, ImageNet weights ship with
            avsdk's dependencies), "resnet18" (SACL) or "vgg16" (SSPL).
        audio: audio encoder; "soundnet" (edge: frozen SoundNet-8 from the ``soundnet``
            package + a trainable head, takes the 22050 Hz waveform), "small_cnn" (log-mel,
            trained from scratch) or "vggish" (published).
        embed_dim: channels of the shared audio-visual space; a 1x1 projection maps the
            trunk's channels to it when they differ (always for efficientnet_lite0).
        pcm: insert SSPL's predictive coding module between the trunk and the map; needs
            a 512-channel 14x14 visual map (224x224 frames). It predicts the audio
            embedding: VGGish's 128-d one (the reference), or the small CNN's 256-d pooled
            vector (the edge counterpart; see SmallAudioCNN).
        pcm_cycles: recurrent cycles of the PCM after its initial pass (4 in SSPL).
        freeze_visual: freeze the trunk (requires_grad False and BatchNorm kept in eval
            mode); the projection, if any, stays trainable.
        freeze_audio_backbone: freeze VGGish's conv and 128-d FC layers (SSPL trains only
            the 128->512->512 head); ignored by small_cnn, which has no pretrained weights.
        nonnegative: a ReLU on the projected visual map and on the audio vector, so the
            cosine map lies in [0, 1] (edge model). Positions whose features share no
            channel with the sound score exactly 0 instead of spreading below 0, and the
            min-max-normalised map (docs/method.md, "Evaluation") becomes a compact region
            instead of a blob over a third of the image (docs/edge_model.md). None (default)
            means True for efficientnet_lite0 and False for the published trunks, which keep
            their linear heads (their trunks' outputs are post-ReLU already).
        projection_init: "random", or "imagenet": the 1x1 projection starts as the
            trunk's own ImageNet classifier (embed_dim 1000, efficientnet_lite0), so that
            before any training the visual map at each position is the ImageNet class
            scores there (ReLU-clipped in a nonnegative model) and the audio vector learns
            to say which classes sound; training then refines both.
        freeze_projection: keep the 1x1 projection as initialised (with
            projection_init="imagenet": the visual map stays the ImageNet class scores and
            only the audio side learns).
        map_weight: "none": the localization map is the cosine of the visual feature and
            the audio vector at each position (SSPL, SACL); "visual_norm" (edge): that
            cosine times the visual feature's norm there, divided by the image's largest
            norm. The cosine alone discards how strongly the trunk responds at a position,
            which is what separates objects from background; the product ranks positions as
            the dot product of the two features does. Training losses keep the cosine.
        image_size: the side of the square frame the model takes when it localizes (the
            Localizer, evaluation, export). The published models and the defaults take 224;
            the edge model trains on 224 crops and localizes at 384, where its map is 24x24
            and objects reach the scale its ImageNet trunk was trained on (chosen on val,
            docs/edge_model.md). A fully convolutional trunk takes any side that is a
            multiple of 32; the PCM needs 224.
    """

    visual: str = "efficientnet_lite0"
    audio: str = "small_cnn"
    embed_dim: int = 512
    pcm: bool = False
    pcm_cycles: int = 4
    freeze_visual: bool = True
    freeze_audio_backbone: bool = False
    nonnegative: bool | None = None
    projection_init: str = "random"
    freeze_projection: bool = False
    map_weight: str = "none"
    image_size: int = 224

    def __post_init__(self):
        if self.visual not in VISUAL_TRUNKS:
            raise bad_input("ModelConfig.visual", f"one of {VISUAL_TRUNKS}", self.visual)
        if self.audio not in AUDIO_ENCODERS:
            raise bad_input("ModelConfig.audio", f"one of {AUDIO_ENCODERS}", self.audio)
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise bad_input("ModelConfig.embed_dim", "a positive int", self.embed_dim)
        if not isinstance(self.pcm_cycles, int) or self.pcm_cycles < 0:
            raise bad_input("ModelConfig.pcm_cycles", "an int >= 0", self.pcm_cycles)
        if self.nonnegative is None:
            object.__setattr__(self, "nonnegative", self.visual == "efficientnet_lite0")
        if not isinstance(self.nonnegative, bool):
            raise bad_input("ModelConfig.nonnegative", "True, False or None (auto)", self.nonnegative)
        if self.projection_init not in ("random", "imagenet"):
            raise bad_input("ModelConfig.projection_init", "'random' or 'imagenet'", self.projection_init)
        if self.projection_init == "imagenet" and (self.visual != "efficientnet_lite0" or self.embed_dim != 1000):
            raise bad_input("ModelConfig.projection_init", "'imagenet' only with visual='efficientnet_lite0' "
                            "and embed_dim=1000 (its classifier's classes)", (self.visual, self.embed_dim))
        if self.map_weight not in MAP_WEIGHTS:
            raise bad_input("ModelConfig.map_weight", f"one of {MAP_WEIGHTS}", self.map_weight)
        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) \
                or not 32 <= self.image_size <= 1024 or self.image_size % 32:
            raise bad_input("ModelConfig.image_size", "an int multiple of 32 in [32, 1024]", self.image_size)
        if self.pcm and self.image_size != 224:
            raise bad_input("ModelConfig.image_size", "224 when pcm=True (the PCM takes a 14x14 map)",
                            self.image_size)
        if self.pcm and self.embed_dim != 512:
            raise bad_input("ModelConfig.embed_dim", "512 when pcm=True", self.embed_dim)

    @classmethod
    def edge(cls, audio: str = "soundnet") -> "ModelConfig":
        """The main job's edge model: frozen EfficientNet-Lite0 whose 1x1 projection starts
        as its ImageNet classifier (1000 channels), and frozen SoundNet-8 + a trainable head
        (or another ``audio`` encoder); the map is weighted by the visual norm and the model
        localizes at 384x384. Chosen on val (docs/edge_model.md)."""
        return cls(audio=audio, embed_dim=1000, projection_init="imagenet", map_weight="visual_norm",
                   image_size=384)

    @classmethod
    def sacl(cls) -> "ModelConfig":
        """SACL: ResNet-18 (layer4 stride 1) and VGGish, both fine-tuned."""
        return cls(visual="resnet18", audio="vggish", freeze_visual=False)

    @classmethod
    def sspl(cls, pcm: bool = True) -> "ModelConfig":
        """SSPL: frozen VGG16 conv5_3, frozen VGGish + trainable head, PCM optional."""
        return cls(visual="vgg16", audio="vggish", pcm=pcm, freeze_visual=True,
                   freeze_audio_backbone=True)
