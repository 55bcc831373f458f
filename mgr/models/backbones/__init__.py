"""Plain ``nn.Module`` backbones (no Lightning): usable without mgr's training code."""

from .resnet3d_slowonly import ResNet3dSlowOnly, slowonly_pose, slowonly_r50_rgb
from .rgbposeconv3d import ResNet3dPathway
from .rgbposeconv3d import RGBPoseConv3D as RGBPoseConv3DBackbone
from .stcnn import DecoupledSTCNN
from .video import (
    R2Plus1DBackbone,
    SwinTransformer3dBackbone,
    adapt_input_channels,
    r2plus1d_backbone,
    swin3d_backbone,
)
from .video_vit import VideoMAEDecoder, VideoViTBackbone

__all__ = [
    "DecoupledSTCNN",
    "R2Plus1DBackbone",
    "RGBPoseConv3DBackbone",
    "ResNet3dPathway",
    "ResNet3dSlowOnly",
    "SwinTransformer3dBackbone",
    "VideoMAEDecoder",
    "VideoViTBackbone",
    "adapt_input_channels",
    "r2plus1d_backbone",
    "slowonly_pose",
    "slowonly_r50_rgb",
    "swin3d_backbone",
]
