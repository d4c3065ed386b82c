"""First-party mrlbench plugins (installed as the ``mrlbench_plugins`` package), each
registered through the ``mrlbench`` entry-point group like any third-party plugin."""
