"""Gradients: per-layer gradient norms of plain vs residual nets (He et al. 2016), response std per layer, and
the shattered-gradients statistics of Balduzzi et al. (ICML 2017).
"""
