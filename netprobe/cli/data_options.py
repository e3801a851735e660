"""The `--data SPEC` option shared by the commands that need data (train, depth, gradients, loss surfaces)."""

import click

data_option = click.option(
    "--data", "data_spec", default="synthetic", show_default=True, metavar="SPEC",
    help="Data set: synthetic (embedded, nothing to download), digits (scikit-learn's 1,797 real digits), cifar10:PATH, cifar100:PATH (python batches) "
         "or folder:PATH (one sub-folder per class).")

# For the commands that also take --weights: a checkpoint is measured on the data it was trained on.
weights_data_option = click.option(
    "--data", "data_spec", default=None, metavar="SPEC",
    help="Data set, as for `netprobe train --data` [default: the data of the --weights checkpoint, else synthetic].")
