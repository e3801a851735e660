"""Hessian of the training loss with respect to the weights, without forming it (PyHessian: Yao et al.,
"PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020, arXiv:1912.07145).

`hessian` computes Hessian-vector products by double backward over a fixed set of batches (the model in
eval mode, so BatchNorm uses its running statistics and the loss is a fixed function of the weights), the
top eigenvalues by power iteration with deflation (each iterate orthogonalised against the eigenvectors
already found; it converges to the eigenvalues largest in magnitude) and the trace by Hutchinson's estimator
with seeded Rademacher probes, with its standard error. `scopes` splits the parameters into the stem, the
blocks and the head for per-block figures (the diagonal blocks of H). `density` estimates the eigenvalue
density by stochastic Lanczos quadrature (Ghorbani et al., ICML 2019) and the extreme (algebraic) eigenvalues.
`study` does all of it for a zoo model and/or its plain twin at a checkpoint of `netprobe train` or the depth
study, on a seeded subset of the training split.
"""
