"""S-space channel localisation and editing (thesis ch. 6).

- :func:`locate` (locate.py): region-based (eq. 6-2) and attribute-based (eq. 6-4..6-6) channel
  localisation with layer-then-channel selection and the two ablations of §6.3.4 -> :class:`ChannelSet`;
- :func:`edit`, :func:`sweep`, :func:`sweep_grid` (edit.py): single-channel (eq. 6-3) and
  multi-channel (eq. 6-7) edits and continuous sweeps rendered as PNG grids;
- baselines.py: StyleSpace (region and attribute detectors), InterFaceGAN, GANSpace;
- metrics.py: attribute dependency AD_t, AD_o and their ratio (§6.3.2).
"""
from fe_fast.editing.edit import edit, save_grid, style_std, sweep, sweep_grid, unit_delta
from fe_fast.editing.locate import Channel, ChannelSet, locate, parse_channels
from fe_fast.editing.metrics import AttributeDependency, attribute_dependency

__all__ = ["locate", "Channel", "ChannelSet", "parse_channels", "edit", "unit_delta", "style_std", "sweep",
           "sweep_grid", "save_grid", "attribute_dependency", "AttributeDependency"]
