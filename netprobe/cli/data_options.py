"""The `--data SPEC` option shared by the commands that need data (train, gradients, loss surfaces)."""

import click

data_option = click.option(
    "--data", "data_spec", default="synthetic", show_default=True, metavar="SPEC",
    help="Data set: synthetic (embedded, nothing to download), digits (scikit-learn's 1,797 real digits), cifar10:PATH, cifar100:PATH (python batches) "
         "or folder:PATH (one sub-folder per class).")
