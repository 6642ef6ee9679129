"""The charged-particle N-body task (EGNN / SEGNN benchmark), with our own simulator.

* :mod:`.simulate`: vectorised simulator (all parameters documented there);
* :mod:`.data`: cached splits, the benchmark's ``.npy`` reader/writer, the torch ``Dataset``;
* :mod:`.model`: the steerable point-convolution network (:class:`~.model.NBodyNet`);
* :mod:`.lit`: ``NBodyDataModule`` and ``NBodyModule`` (Lightning);
* :mod:`.train`: the command line (``python -m steerable.tasks nbody --preset demo``).

Importing this package imports nothing heavy; import the submodules.
"""
