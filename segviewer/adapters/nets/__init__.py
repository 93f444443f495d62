"""Architectures of the small models we train on the shapes world and ship in ``models/``.

Each module builds a plain ``torch.nn.Module`` from a few integers (kept in the checkpoint's
``config``), so an adapter can rebuild exactly the network a checkpoint was trained with.
"""
