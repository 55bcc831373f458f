"""Plain ``nn.Module`` backbones (no Lightning): usable without mgr's training code."""

from .resnet3d_slowonly import ResNet3dSlowOnly, slowonly_pose, slowonly_r50_rgb
from .stcnn import DecoupledSTCNN

__all__ = ["DecoupledSTCNN", "ResNet3dSlowOnly", "slowonly_pose", "slowonly_r50_rgb"]
