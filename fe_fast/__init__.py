"""fe-fast: compiled kernels and the four methods of "Research about Face Editing Based on Image
Features" (Yan Yuanjie, Nanjing University, 2023): HOUV registration (ch. 3), DERC clustering
(ch. 4), StyleGAN2 (ch. 5) and S-space channel editing (ch. 6)."""

__version__ = "0.1.0"
