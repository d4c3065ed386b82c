"""The image side of mrlbench: ResNet models (MRL, MRL-E, fixed-feature) trained on and
encoding real images into the reference pipeline's arrays.

Library modules (imported by the plugin modules below, never registered themselves):

- ``models``: the networks, their MRL / fixed-feature heads, reference checkpoints;
- ``data``: image folders, Fashion-MNIST's files, in-memory and truncated splits;
- ``encoding``: transforms and fast, resumable, flat-memory encoding into arrays;
- ``training``: the Matryoshka loss and the seeded trainer;
- ``chunked``: resumable row-by-row writes of ``.npy`` array pairs;
- ``settings``: the settings the above share (``Settings``, ``TrainSettings``);
- ``options``: the image options of the commands (``source_options``, ``Images``).

Plugin modules (registered through the ``mrlbench`` entry-point group; they import the
library modules and the core, never each other):

- ``encoders``: the encoders ``resnet50-mrl`` and ``resnet50-ff``;
- ``datasets``: the datasets ``image-folder``, ``imagenetv2``, ``fashion-mnist`` and the
  ``fetch`` command;
- ``commands``: the commands ``encode`` and ``train``.

The plugin modules, ``settings``, ``data`` and ``chunked`` import without PyTorch (the
encoders then report themselves unavailable); ``models``, ``encoding`` and ``training``
need the ``vision`` extra.
"""
