"""Image clustering: DERC (thesis chapter 4), its ablations and the ACC/NMI metrics (eq. 4-12, 4-13)."""
from .derc import DAE, DERC
from .metrics import clustering_accuracy, nmi

__all__ = ["DERC", "DAE", "clustering_accuracy", "nmi"]
