"""Training cost: one training step (forward, loss, backward, optimizer step) traced on the meta device.

`step` records every aten operator of the three phases, the storages they allocate and free, and what autograd
saves; `backward_flops` extends the counting formulas to backward operators; `cost` folds the trace into
per-layer costs, a live-bytes timeline and totals; `allocator` replays it through the CUDA caching
allocator's rules; `variants` runs the forward with blocks checkpointed or under an autocast stand-in;
`columns` adds the training columns to a summary.
"""
