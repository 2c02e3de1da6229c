"""StyleGAN2 (thesis ch. 5) with S space as a first-class API (thesis ch. 6, Table 6-2).

``Generator``/``Discriminator`` (networks, discriminator), checkpoint I/O without executing code
from the file (io), training with the thesis's losses (training, split by concern; train keeps
the old module's names) and FID (metrics)."""
from fe_fast.stylegan.discriminator import Discriminator
from fe_fast.stylegan.networks import Generator, MappingNetwork, SLayer, SynthesisNetwork

__all__ = ["Generator", "Discriminator", "MappingNetwork", "SynthesisNetwork", "SLayer"]
