"""Plain ``nn.Module`` backbones (no Lightning): usable without mgr's training code."""

from .stcnn import DecoupledSTCNN

__all__ = ["DecoupledSTCNN"]
