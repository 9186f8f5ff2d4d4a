from nin.models.blocks import MLPConv
from nin.models.nin import NIN, MlpConvSpec, ModelConfig, global_average_pool
from nin.models.registry import PRESETS, build_model, preset_config

__all__ = ["MLPConv", "NIN", "MlpConvSpec", "ModelConfig", "global_average_pool", "PRESETS", "build_model", "preset_config"]
